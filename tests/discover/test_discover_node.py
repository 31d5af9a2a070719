"""Discovery against simulated nodes: libraries, driver version, devices, inventory backends."""

from __future__ import annotations

import json
import os

import pytest

from gpuctk.discover import devices as D
from gpuctk.discover.inventory import from_procfs, load_fixture, select_inventory
from gpuctk.discover.rootfs import DriverRoot
from gpuctk.errors import GpuctkError


def test_library_lookup_search_dirs_then_ldcache(sim_nodes, tmp_path):
    node = sim_nodes.get("dgx-h100")
    root = DriverRoot(node.root)
    hits = root.locate_libraries("libcuda.so.*.*")
    assert [os.path.basename(h) for h in hits] == ["libcuda.so.580.105.08"]
    assert root.driver_version_from_libraries() == "580.105.08"
    # libdxcore-style lookup only through the cache: WSL's /usr/lib/wsl/lib is not a search dir
    wsl = DriverRoot(sim_nodes.get("wsl2").root)
    assert [os.path.basename(h) for h in wsl.locate_libraries("libdxcore.so")] == ["libdxcore.so"]


def test_resolve_stays_inside_root(tmp_path):
    root = tmp_path / "r"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/real.so.1").write_bytes(b"x")
    os.symlink("/usr/lib/real.so.1", root / "usr/lib/abs.so")  # absolute target: inside the root
    os.symlink("../../../../../../etc/passwd", root / "usr/lib/escape.so")
    r = DriverRoot(str(root))
    assert r.resolve(str(root / "usr/lib/abs.so")) == str(root / "usr/lib/real.so.1")
    assert r.resolve(str(root / "usr/lib/escape.so")) in (None, str(root / "etc/passwd"))


def test_firmware_binaries_ipc(sim_nodes):
    root = DriverRoot(sim_nodes.get("dgx-h100").root)
    assert [os.path.basename(f) for f in root.firmware("580.105.08")] == ["gsp_ga10x.bin", "gsp_tu10x.bin"]
    assert (root.locate_binary("nvidia-smi") or "").endswith("/usr/bin/nvidia-smi")
    assert [root.container(s) for s in root.ipc_sockets()] == [
        "/run/nvidia-persistenced/socket",
        "/run/nvidia-fabricmanager/socket",
    ]


def test_device_nodes_and_replaceable_stat(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    n, gids = D.device_node_edit(node.root, "/dev/dri/card1")
    assert (n["major"], n["minor"], n["fileMode"], n["gid"]) == (226, 1, 0o660, 44) and gids == [44]
    n, gids = D.device_node_edit(node.root, "/dev/nvidiactl")
    assert (n["major"], n["minor"]) == (195, 255) and gids == [] and n["hostPath"].endswith("/dev/nvidiactl")
    assert D.drm_nodes(node.root, "0000:53:00.0") == ["/dev/dri/card1", "/dev/dri/renderD128"]
    assert D.by_path_links(node.root, "0000:53:00.0", ["/dev/dri/card1"]) == [
        "../card1::/dev/dri/by-path/pci-0000:53:00.0-card"
    ]
    prev = D.set_stat_device(lambda p: D.NodeStat(99, 7, 0o600, 0))
    try:
        n, _ = D.device_node_edit("/", "/dev/anything")
        assert (n["major"], n["minor"], n["fileMode"]) == (99, 7, 0o600) and "hostPath" not in n
    finally:
        D.set_stat_device(prev)
    n, _ = D.device_node_edit(node.root, "/dev/missing")
    assert set(n) == {"path", "hostPath"}


def test_descriptor_device_files(tmp_path):
    from gpuctk.sim import create_node
    from gpuctk.sim.devstat import use_descriptor_devices

    node = create_node("no-gpu", str(tmp_path / "n"), real_devices=False)
    assert node.device_mode == "descriptor"
    ctl = os.path.join(node.root, "dev/nvidiactl")
    # production code: real device nodes only, a regular file never counts
    assert D.stat_device(ctl) is None
    prev = use_descriptor_devices()  # the simulator's stat function, installed explicitly
    try:
        assert D.stat_device(ctl) == D.NodeStat(195, 255, 0o666, 0)
        (tmp_path / "plain").write_text("not json")
        assert D.stat_device(str(tmp_path / "plain")) is None
    finally:
        D.set_stat_device(prev)
    assert D.stat_device(ctl) is None


def test_inventory_backends(sim_nodes, tmp_path, monkeypatch):
    node = sim_nodes.get("dgx-a100-mig")
    fixture = load_fixture(node.inventory_path)
    procfs = from_procfs(node.root)
    assert [g["uuid"] for g in fixture["gpus"]] == [g["uuid"] for g in procfs["gpus"]]
    assert [g["pci_bus_id"] for g in fixture["gpus"]] == [g["pci_bus_id"] for g in procfs["gpus"]]
    assert procfs["driver_version"] == fixture["driver_version"] == "570.148.08"
    assert [(m["gpu_instance_id"], m["compute_instance_id"]) for m in procfs["gpus"][1]["mig_devices"]] == [
        (m["gpu_instance_id"], m["compute_instance_id"]) for m in fixture["gpus"][1]["mig_devices"]
    ]
    assert procfs["gpus"][0]["mig_devices"][0]["uuid"] is None  # procfs has no MIG UUIDs
    monkeypatch.setenv("GPUCTK_INVENTORY", node.inventory_path)
    assert select_inventory(None, dev_root=node.root, driver_root=node.root)["source"].startswith(
        "gpuctk-sim"
    )
    monkeypatch.delenv("GPUCTK_INVENTORY")
    assert select_inventory(None, dev_root=node.root, driver_root=node.root)["source"].startswith("procfs")


def test_sysfs_fallback_and_bad_fixtures(tmp_path):
    dev = tmp_path / "sys/bus/pci/devices/0000:01:00.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x10de\n")
    (dev / "class").write_text("0x030000\n")
    other = tmp_path / "sys/bus/pci/devices/0000:02:00.0"
    other.mkdir(parents=True)
    (other / "vendor").write_text("0x8086\n")
    inv = from_procfs(str(tmp_path))
    assert [g["pci_bus_id"] for g in inv["gpus"]] == ["0000:01:00.0"]
    bad = tmp_path / "bad.json"
    for content, msg in (
        ("{", "invalid inventory JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"gpus": [{"minor": "x"}]}), "gpus\\[0\\]"),
    ):
        bad.write_text(content)
        with pytest.raises(GpuctkError, match=msg):
            load_fixture(str(bad))
    with pytest.raises(GpuctkError, match="cannot read"):
        load_fixture(str(tmp_path / "none.json"))


def _lib(root, rel, soname):
    from gpuctk.sim.elfwriter import shared_object

    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(shared_object(soname))
    return p


def test_lookup_lib64_without_cache(tmp_path):
    # like upstream's rootfs-no-cache-lib64
    _lib(tmp_path, "/usr/lib64/libcuda.so.999.88.77", "libcuda.so.1")
    os.symlink("libcuda.so.999.88.77", tmp_path / "usr/lib64/libcuda.so.1")
    r = DriverRoot(str(tmp_path))
    assert r.driver_version_from_libraries() == "999.88.77"
    assert r.locate_libraries("libcuda.so.1") == [str(tmp_path / "usr/lib64/libcuda.so.999.88.77")]


def test_lookup_through_ldcache_only(tmp_path):
    # like upstream's rootfs-2: libraries outside every search dir, found through the cache
    from gpuctk.sim.ldcache_writer import build_ldcache

    _lib(tmp_path, "/var/lib/nvidia/lib64/libnvidia-ml.so.999.88.77", "libnvidia-ml.so.1")
    os.symlink("libnvidia-ml.so.999.88.77", tmp_path / "var/lib/nvidia/lib64/libnvidia-ml.so.1")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/ld.so.cache").write_bytes(
        build_ldcache([("libnvidia-ml.so.1", "/var/lib/nvidia/lib64/libnvidia-ml.so.1")])
    )
    r = DriverRoot(str(tmp_path))
    assert r.locate_libraries("libnvidia-ml.so.1") == [
        str(tmp_path / "var/lib/nvidia/lib64/libnvidia-ml.so.999.88.77")
    ]
    assert r.locate_libraries("libcuda.so.*") == []


def test_bad_soname_never_becomes_a_link(tmp_path):
    from gpuctk.generate.driver import _so_links

    lib = _lib(tmp_path, "/usr/lib/x86_64-linux-gnu/libevil.so.1.0", "../../../etc/evil")
    assert _so_links(DriverRoot(str(tmp_path)), str(lib)) == []
