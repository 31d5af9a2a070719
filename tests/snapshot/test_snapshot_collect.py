"""Snapshot collectors on fixtures: a fake nvidia-smi printing a real capture, a temp host root."""

from __future__ import annotations

import json
import os
import stat

import yaml
from snapfixtures import DRIVER, fake_nvidia_smi, write_spec

from gpuctk.cli.main import main
from gpuctk.snapshot.cdispecs import check_specs, missing_host_paths, spec_driver_versions
from gpuctk.snapshot.collect import (
    SnapshotOptions,
    collect_dev_char,
    collect_gpus,
    collect_os,
    collect_snapshot,
)
from support.tools import require


def test_gpus_from_fake_nvidia_smi(smi):
    g = collect_gpus(smi)
    assert g["available"] and g["count"] == 8 and g["driver_version"] == DRIVER
    assert g["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3" and g["gpus"][0]["persistence_mode"] == "Enabled"


def test_gpus_missing_or_failing_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert collect_gpus() == {"available": False, "count": 0, "error": "nvidia-smi not found on PATH"}
    bad = fake_nvidia_smi(str(tmp_path / "bad"), fail=True)
    g = collect_gpus(bad)
    assert not g["available"] and "exited 9" in g["error"] and "could not communicate" in g["error"]


def test_os_release(host):
    root, _ = host
    info = collect_os(root)
    assert info["pretty_name"] == "Ubuntu 22.04.4 LTS" and info["id"] == "ubuntu" and info["kernel"]


def test_specs_current_stale_and_invalid(host):
    root, libs = host
    write_spec(root, "good.json", libs)
    write_spec(root, "old-driver.json", [p.replace(DRIVER, "550.54.15") for p in libs])
    write_spec(root, "gone.json", [*libs, "/usr/bin/nvidia-smi-gone"])
    with open(os.path.join(root, "etc", "cdi", "broken.yaml"), "w") as f:
        f.write("cdiVersion: [unclosed\n")
    by_name = {
        os.path.basename(s["path"]): s for s in check_specs(root, ["/etc/cdi", "/var/run/cdi"], DRIVER)
    }
    assert set(by_name) == {"good.json", "old-driver.json", "gone.json", "broken.yaml"}
    assert by_name["good.json"]["stale"] is False and by_name["good.json"]["devices"] == ["0"]
    old = by_name["old-driver.json"]
    assert old["stale"] and any("550.54.15" in r and DRIVER in r for r in old["stale_reasons"])
    assert any("host paths missing" in r for r in old["stale_reasons"])
    assert by_name["gone.json"]["stale_reasons"] == ["host paths missing: /usr/bin/nvidia-smi-gone"]
    assert by_name["broken.yaml"]["valid"] is False and "cannot parse" in by_name["broken.yaml"]["errors"][0]


def test_spec_helpers():
    spec = {
        "containerEdits": {
            "mounts": [{"hostPath": "/lib/libcuda.so.535.104.05"}, {"hostPath": "/x/libfoo.so.1"}]
        },
        "devices": [{"name": "a", "containerEdits": {"deviceNodes": [{"path": "/dev/nope-xyz"}]}}],
    }
    assert spec_driver_versions(spec) == ["535.104.05"]
    assert "/dev/nope-xyz" in missing_host_paths(spec, "/")


def test_dev_char_links(tmp_path):
    require(os.geteuid() == 0, "mknod needs root")
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "dev", "char"))
    os.mknod(os.path.join(root, "dev", "nvidia0"), stat.S_IFCHR | 0o666, os.makedev(195, 0))
    os.mknod(os.path.join(root, "dev", "nvidiactl"), stat.S_IFCHR | 0o666, os.makedev(195, 255))
    os.symlink("../nvidia0", os.path.join(root, "dev", "char", "195:0"))
    dc = collect_dev_char(root)
    assert dc == {"checked": 2, "missing": [{"device": "/dev/nvidiactl", "link": "/dev/char/195:255"}]}


def test_full_snapshot_with_engine_fixture(host, smi):
    root, libs = host
    write_spec(root, "nvidia.json", libs)
    os.makedirs(os.path.join(root, "etc", "containerd"))
    with open(os.path.join(root, "etc", "containerd", "config.toml"), "w") as f:
        f.write('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true\n')
    opts = SnapshotOptions(
        host_root=root,
        nvidia_smi=smi,
        runtime="containerd",
        engine_version="containerd://1.7.12",
        kubernetes=False,
        node_name="n1",
    )
    snap = collect_snapshot(opts)
    assert snap["kind"] == "GpuctkSnapshot" and snap["node"] == "n1" and snap["gpu"]["count"] == 8
    eng = snap["engines"][0]
    assert eng["engine"] == "containerd" and eng["version"] == "1.7.12" and eng["cdi_enabled"] is True
    assert [s["stale"] for s in snap["cdi"]["specs"]] == [False]
    assert snap["kubernetes"] is None and snap["os"]["id"] == "ubuntu"


def test_snapshot_cli_local(host, smi, tmp_path, capsys):
    root, libs = host
    write_spec(root, "nvidia.json", libs)
    out = tmp_path / "snap.yaml"
    rc = main(["snapshot", "--host-root", root, "--nvidia-smi", smi, "--no-kubernetes", "-o", str(out)])
    assert rc == 0
    snap = yaml.safe_load(out.read_text())
    assert (
        snap["gpu"]["driver_version"] == DRIVER and snap["cdi"]["specs"][0]["path"] == "/etc/cdi/nvidia.json"
    )
    rc = main(["snapshot", "--host-root", root, "--nvidia-smi", smi, "--no-kubernetes", "--format", "json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["gpu"]["count"] == 8


def test_snapshot_cli_local_mutual_exclusion(capsys):
    assert main(["snapshot", "--runtime-class", "nvidia", "--require-gpu", "--no-kubernetes"]) == 2
    assert "mutually exclusive" in capsys.readouterr().err


def test_specs_checked_by_the_cdi_library(host):
    root, libs = host
    write_spec(root, "bad-kind.json", libs, kind="not a kind")
    (entry,) = check_specs(root, ["/etc/cdi"], DRIVER)
    assert entry["valid"] is False and entry["errors"]


def test_spec_with_fields_of_the_wrong_type_is_invalid_not_a_crash(host):
    root, _ = host
    os.makedirs(os.path.join(root, "etc", "cdi"))
    with open(os.path.join(root, "etc", "cdi", "odd.yaml"), "w") as f:
        f.write(
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: 5\ncontainerEdits: {mounts: 3, deviceNodes: [1]}\n"
        )
    (entry,) = check_specs(root, ["/etc/cdi"], DRIVER)
    assert entry["valid"] is False and any("devices" in e for e in entry["errors"])
    assert entry["devices"] == [] and entry["stale"] is False
