"""Simulated nodes: layout, device nodes, ELF libraries, ld.so.cache, nvidia-smi."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import subprocess

import pytest

from gpuctk.discover.elf import read_soname
from gpuctk.discover.ldcache import load_ldcache
from gpuctk.discover.nvsmi import parse_nvidia_smi_xml
from gpuctk.errors import GpuctkError
from gpuctk.sim import PROFILES, create_node, load_node
from support.tools import missing


@pytest.mark.parametrize("profile", PROFILES)
def test_node_facts(profile, sim_nodes):
    node = sim_nodes.get(profile)
    with open(os.path.join(node.directory, "node.json")) as f:
        facts = json.load(f)
    assert facts["root"] == node.root == node.driver_root == node.dev_root
    assert load_node(node.directory).gpus == node.gpus
    with open(node.inventory_path) as f:
        inv = json.load(f)
    assert [g["uuid"] for g in inv["gpus"]] == [g["uuid"] for g in node.gpus]
    assert os.access(node.nvidia_smi, os.X_OK)


def test_dgx_h100_layout(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    assert len(node.gpus) == 8 and node.driver_version.startswith("580.")
    r = node.root
    for p in (
        "dev/nvidiactl",
        "dev/nvidia7",
        "dev/nvidia-nvswitch3",
        "dev/nvidia-caps-imex-channels/channel0",
    ):
        assert os.path.lexists(os.path.join(r, p)), p
    if os.geteuid() == 0:
        st = os.stat(os.path.join(r, "dev/nvidia3"))
        assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (195, 3)
    with open(os.path.join(r, "proc/devices")) as f:
        assert "195 nvidia" in f.read()
    lib = os.path.join(r, "usr/lib/x86_64-linux-gnu")
    assert read_soname(os.path.join(lib, "libcuda.so.580.105.08")) == "libcuda.so.1"
    assert os.readlink(os.path.join(lib, "libcuda.so.1")) == "libcuda.so.580.105.08"
    assert os.readlink(os.path.join(lib, "libcuda.so")) == "libcuda.so.1"
    cache = dict(load_ldcache(os.path.join(r, "etc/ld.so.cache")))
    assert cache["libcuda.so.1"] == "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
    assert os.path.exists(os.path.join(r, f"lib/firmware/nvidia/{node.driver_version}/gsp_ga10x.bin"))


def test_ldcache_built_by_real_ldconfig(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/ldconfig"):
        missing("ldconfig -r needs root")
    assert node.ldcache == "ldconfig"
    out = subprocess.run(
        ["/usr/sbin/ldconfig", "-p", "-C", os.path.join(node.root, "etc/ld.so.cache")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1" in out


def test_nvidia_smi_matches_inventory(sim_nodes):
    node = sim_nodes.get("dgx-a100-mig")
    listing = subprocess.run([node.nvidia_smi, "-L"], capture_output=True, text=True, check=True).stdout
    for g in node.gpus:
        assert f"GPU {g['index']}: NVIDIA A100-SXM4-40GB (UUID: {g['uuid']})" in listing
        for m in g["mig_devices"]:
            assert f"(UUID: {m['uuid']})" in listing
    xml = subprocess.run([node.nvidia_smi, "-q", "-x"], capture_output=True, check=True).stdout
    parsed = parse_nvidia_smi_xml(xml)
    assert parsed["driver_version"] == node.driver_version
    assert [g["uuid"] for g in parsed["gpus"]] == [g["uuid"] for g in node.gpus]
    assert [g["minor_number"] for g in parsed["gpus"]] == [g["minor"] for g in node.gpus]
    assert [g["mig_mode"] for g in parsed["gpus"][:3]] == ["Enabled", "Enabled", "Disabled"]
    assert [g["pci_bus_id"].lower()[4:] for g in parsed["gpus"]] == [g["pci_bus_id"] for g in node.gpus]


def test_no_gpu_nvidia_smi(sim_nodes):
    node = sim_nodes.get("no-gpu")
    p = subprocess.run([node.nvidia_smi, "-L"], capture_output=True, text=True)
    assert p.returncode == 6 and "No devices were found" in p.stdout


def test_jetson_and_wsl_specifics(sim_nodes):
    j = sim_nodes.get("jetson-orin")
    assert os.path.isfile(os.path.join(j.root, "etc/nv_tegra_release"))
    csvdir = os.path.join(j.root, "etc/nvidia-container-runtime/host-files-for-container.d")
    assert sorted(os.listdir(csvdir)) == ["devices.csv", "drivers.csv", "l4t.csv"]
    with open(os.path.join(j.root, "usr/lib/aarch64-linux-gnu/nvidia/libcuda.so.1.1"), "rb") as f:
        assert f.read(20)[18] == 183  # EM_AARCH64
    w = sim_nodes.get("wsl2")
    assert os.path.lexists(os.path.join(w.root, "dev/dxg"))
    assert os.path.exists(os.path.join(w.root, "usr/lib/wsl/lib/libdxcore.so"))


def test_driver_version_override_and_recreate(tmp_path):
    a = create_node("no-gpu", str(tmp_path / "n"), driver_version="575.1.2")
    assert os.path.exists(os.path.join(a.root, "usr/lib/x86_64-linux-gnu/libcuda.so.575.1.2"))
    b = create_node("no-gpu", str(tmp_path / "n"), driver_version="580.3.4")
    assert not os.path.exists(os.path.join(b.root, "usr/lib/x86_64-linux-gnu/libcuda.so.575.1.2"))


def test_unknown_profile_and_cli(tmp_path):
    with pytest.raises(GpuctkError, match="unknown simulation profile"):
        create_node("dgx-b200", str(tmp_path / "x"))
    from gpuctk.cli.main import main

    assert main(["sim", "create", "--profile", "wsl2", "--json", str(tmp_path / "w")]) == 0
    assert json.loads(pathlib.Path(tmp_path / "w" / "node.json").read_text())["profile"] == "wsl2"
    assert main(["sim", "list-profiles"]) == 0


@pytest.mark.parametrize("where", ["/proc/gpuctk-sim-x", "file"])
def test_create_in_unusable_directory_is_a_one_line_error(where, tmp_path):
    target = str(tmp_path / "afile" / "node") if where == "file" else where
    (tmp_path / "afile").write_text("not a dir")
    with pytest.raises(GpuctkError, match="cannot create simulated node directory"):
        create_node("no-gpu", target)
    from gpuctk.cli.main import main

    assert main(["sim", "create", "--profile", "no-gpu", target]) == 1


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_simulated_libraries_have_section_headers_with_the_soname(machine, tmp_path):
    """Section-header readers (Go's debug/elf DynString, which upstream's generator uses;
    readelf; objdump) see the SONAME, not only program-header readers."""
    import struct

    from gpuctk.discover import elf
    from gpuctk.sim.elfwriter import shared_object
    from support.tools import require_tool

    data = shared_object("libcuda.so.1", machine, note=("NVIDIA", b"x"))
    # independent of the writer's layout: walk the section table as debug/elf does
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    shstr = secs[shstrndx]
    names = [data[shstr[4] + s[0] : data.index(b"\0", shstr[4] + s[0])].decode() for s in secs]
    assert names == ["", ".dynstr", ".dynsym", ".hash", ".note", ".dynamic", ".shstrtab"]
    dynamic = secs[names.index(".dynamic")]
    assert dynamic[1] == 6 and names[dynamic[6]] == ".dynstr"  # SHT_DYNAMIC linked to its strings
    assert elf._soname_from_sections(elf._Elf(data)) == "libcuda.so.1"
    path = tmp_path / "libcuda.so.1"
    path.write_bytes(data)
    out = subprocess.run([require_tool("readelf"), "-W", "-d", str(path)], capture_output=True, text=True)
    assert "Library soname: [libcuda.so.1]" in out.stdout, out.stdout + out.stderr
    assert "Error" not in out.stderr and "Warning" not in out.stderr, out.stderr
