"""Parsers: ld.so.cache, ELF, mig-minors, /proc/devices, CSV, nvidia-smi XML (tables + fuzzing)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuctk.discover.csvfiles import list_csv_dir, load_csv, parse_csv
from gpuctk.discover.elf import read_soname, soname_from_bytes
from gpuctk.discover.ldcache import OLD_MAGIC, load_ldcache, parse_ldcache
from gpuctk.discover.nvsmi import parse_nvidia_smi_xml
from gpuctk.discover.procfs import (
    nvidia_major,
    parse_information,
    parse_mig_minors,
    parse_nvrm_version,
    parse_proc_devices,
)
from gpuctk.errors import GpuctkError
from gpuctk.sim.elfwriter import shared_object
from gpuctk.sim.ldcache_writer import build_ldcache
from support.tools import missing

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "nvidia-smi")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- ELF
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_elf_soname_roundtrip(machine):
    assert soname_from_bytes(shared_object("libcuda.so.1", machine)) == "libcuda.so.1"


def test_elf_without_soname_and_garbage():
    assert soname_from_bytes(shared_object(None)) is None
    assert soname_from_bytes(b"") is None
    assert soname_from_bytes(b"\x7fELF" + b"\xff" * 60) is None
    assert read_soname("/nonexistent/lib.so") is None


def test_elf_reads_real_system_library():
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        missing("no x86-64 glibc here")
    assert read_soname(libc) == "libc.so.6"


@FUZZ
@given(st.binary(max_size=512))
def test_elf_fuzz_random_bytes_never_raise(data):
    assert soname_from_bytes(data) is None or isinstance(soname_from_bytes(data), str)


@FUZZ
@given(st.integers(0, 400), st.binary(min_size=1, max_size=8))
def test_elf_fuzz_corrupted_valid_file(offset, patch):
    good = bytearray(shared_object("libnvidia-ml.so.1"))
    offset %= len(good)
    good[offset : offset + len(patch)] = patch
    result = soname_from_bytes(bytes(good[: max(len(good), 1)]))
    assert result is None or isinstance(result, str)


# ---------------------------------------------------------------- ld.so.cache
def test_ldcache_new_format_roundtrip():
    entries = [("libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"), ("libz.so.1", "/lib/libz.so.1")]
    assert sorted(parse_ldcache(build_ldcache(entries))) == sorted(entries)


def test_ldcache_aarch64_entries_are_64bit():
    assert parse_ldcache(build_ldcache([("libcuda.so.1", "/x/libcuda.so.1")], "aarch64")) == [
        ("libcuda.so.1", "/x/libcuda.so.1")
    ]


def _old_format(entries, then_new: bytes = b""):
    strings = b""
    table = b""
    for k, v in entries:
        ko = len(strings)
        strings += k.encode() + b"\0"
        vo = len(strings)
        strings += v.encode() + b"\0"
        table += struct.pack("<iII", 0x0303, ko, vo)
    head = OLD_MAGIC + b"\0" + struct.pack("<I", len(entries))
    if then_new:
        body = head + table
        pad = (-len(body)) % 8
        return body + b"\0" * pad + then_new
    return head + table + strings


def test_ldcache_old_format_and_old_plus_new():
    entries = [("libfoo.so.1", "/lib/libfoo.so.1")]
    assert parse_ldcache(_old_format(entries)) == entries
    new = build_ldcache([("libbar.so.2", "/usr/lib/libbar.so.2")])
    assert parse_ldcache(_old_format(entries, then_new=new)) == [("libbar.so.2", "/usr/lib/libbar.so.2")]


def test_ldcache_32bit_entries_skipped():
    data = bytearray(build_ldcache([("libx.so.1", "/lib/libx.so.1")]))
    struct.pack_into("<i", data, 48, 0x0003)  # libc6, no 64-bit arch bits (i386)
    assert parse_ldcache(bytes(data)) == []
    assert parse_ldcache(bytes(data), only_64bit=False) == [("libx.so.1", "/lib/libx.so.1")]


def test_ldcache_host_cache_parses():
    if not os.path.exists("/etc/ld.so.cache"):
        missing("no host ld.so.cache")
    entries = load_ldcache("/etc/ld.so.cache")
    assert any(k == "libc.so.6" for k, _ in entries)


def test_ldcache_bad_inputs():
    for bad in (b"", b"garbage", b"glibc-ld.so.cache1.1" + b"\xff" * 40):
        with pytest.raises(ValueError):
            parse_ldcache(bad)
    assert load_ldcache("/nonexistent") == []


@FUZZ
@given(st.binary(max_size=300))
def test_ldcache_fuzz_only_valueerror(data):
    for prefix in (b"", b"glibc-ld.so.cache1.1", OLD_MAGIC + b"\0"):
        try:
            entries = parse_ldcache(prefix + data)
        except ValueError:
            continue
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in entries)


# ---------------------------------------------------------------- procfs
PROC_DEVICES = """Character devices:
  1 mem
195 nvidia-frontend
226 drm
510 nvidia-uvm
508 nvidia-caps

Block devices:
  8 sd
259 blkext
"""


def test_proc_devices():
    d = parse_proc_devices(PROC_DEVICES)
    assert d["nvidia-uvm"] == 510 and d["nvidia-caps"] == 508 and "sd" not in d
    assert nvidia_major(d) == 195
    assert nvidia_major(parse_proc_devices("Character devices:\n195 nvidia\n")) == 195
    assert nvidia_major({}) is None


def test_mig_minors():
    text = "config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu0/gi0/ci0/access 4\ngpu1/gi2/ci7/access 163\nbogus line\ngpu0/gi/access 9\n"
    m = parse_mig_minors(text)
    assert m == {
        "config": 1,
        "monitor": 2,
        "gpu0/gi0/access": 3,
        "gpu0/gi0/ci0/access": 4,
        "gpu1/gi2/ci7/access": 163,
    }


def test_information_and_version():
    info = parse_information("Model: \t\t NVIDIA H100\nGPU UUID: \t GPU-1\nDevice Minor: \t 3\n")
    assert info["Model"] == "NVIDIA H100" and info["Device Minor"] == "3"
    assert (
        parse_nvrm_version(
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.105.08  Release Build"
        )
        == "580.105.08"
    )
    assert (
        parse_nvrm_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.54.03  Tue Jun")
        == "535.54.03"
    )
    assert parse_nvrm_version("junk") is None


@FUZZ
@given(st.text(max_size=400))
def test_procfs_fuzz(text):
    assert isinstance(parse_proc_devices(text), dict)
    assert isinstance(parse_mig_minors(text), dict)
    assert isinstance(parse_information(text), dict)
    parse_nvrm_version(text)


# ---------------------------------------------------------------- CSV
def test_csv_parse_rules():
    text = "dev, /dev/nvidia0\n   dev   , /dev/target \nlib,/usr/lib/libcuda.so.1.1\nsym, /a, b\nbogus, /x\nnocomma\ndir,\n"
    assert parse_csv(text) == [
        ("dev", "/dev/nvidia0"),
        ("dev", "/dev/target"),
        ("lib", "/usr/lib/libcuda.so.1.1"),
        ("sym", "/a, b"),
    ]


def test_csv_files_and_dir(tmp_path):
    (tmp_path / "a.csv").write_text("dev, /dev/x\n")
    (tmp_path / "B.CSV").write_text("lib, /y\n")
    (tmp_path / ".csv").write_text("lib, /z\n")
    (tmp_path / "other.not_csv").write_text("lib, /z\n")
    (tmp_path / "empty.csv").write_text("# nothing\n")
    (tmp_path / "sub.csv").mkdir()
    assert [os.path.basename(p) for p in list_csv_dir(str(tmp_path))] == ["B.CSV", "a.csv", "empty.csv"]
    assert load_csv(str(tmp_path / "a.csv")) == [("dev", "/dev/x")]
    with pytest.raises(GpuctkError, match="empty"):
        load_csv(str(tmp_path / "empty.csv"))
    with pytest.raises(GpuctkError, match="cannot read"):
        load_csv(str(tmp_path / "missing.csv"))
    assert list_csv_dir(str(tmp_path / "nope")) == []


@FUZZ
@given(st.text(max_size=400))
def test_csv_fuzz(text):
    for kind, path in parse_csv(text):
        assert kind in ("dev", "lib", "sym", "dir") and path == path.strip() and path


# ---------------------------------------------------------------- nvidia-smi XML
@pytest.mark.parametrize(
    "name,count,driver,dtd",
    [
        ("qx-h100.xml", 8, "580.105.08", "nvsmi_device_v13.dtd"),
        ("qx-a100.xml", 1, "570.148.08", "nvsmi_device_v12.dtd"),
        ("qx-l40s.xml", 1, "595.91.07", "nvsmi_device_v13.dtd"),
        ("qx-t4.xml", 1, "595.91.07", "nvsmi_device_v13.dtd"),
    ],
)
def test_nvsmi_real_captures(name, count, driver, dtd):
    with open(os.path.join(DATA, name), "rb") as f:
        d = parse_nvidia_smi_xml(f.read())
    assert d["driver_version"] == driver and d["dtd"] == dtd and len(d["gpus"]) == count == d["attached_gpus"]
    g = d["gpus"][0]
    assert g["uuid"].startswith("GPU-") and g["minor_number"] == 0 and g["pci_bus_id"].startswith("00000000:")
    assert g["mig_devices"] == []
    assert g["mig_mode"] in ("Disabled", None)  # L40S/T4 report N/A


def test_nvsmi_h100_bus_ids():
    with open(os.path.join(DATA, "qx-h100.xml"), "rb") as f:
        d = parse_nvidia_smi_xml(f.read())
    assert [g["minor_number"] for g in d["gpus"]] == list(range(8))
    assert d["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"


def test_nvsmi_mig_enabled_from_simulator():
    from gpuctk.sim.nvsmi_render import render_xml
    from gpuctk.sim.profiles import profile_data

    inv = profile_data("dgx-a100-mig")
    d = parse_nvidia_smi_xml(render_xml(inv, "qx-a100.xml"))
    g0 = d["gpus"][0]
    assert g0["mig_mode"] == "Enabled"
    assert [(m["gpu_instance_id"], m["compute_instance_id"]) for m in g0["mig_devices"]] == [
        (2, 0),
        (3, 0),
        (9, 0),
        (10, 0),
    ]
    assert d["gpus"][2]["mig_mode"] == "Disabled" and d["gpus"][2]["mig_devices"] == []


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"<nvidia_smi_log>",
        b"<other/>",
        "<nvidia_smi_log><gpu></nvidia_smi_log>",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><nvidia_smi_log>&a;</nvidia_smi_log>',
        b'<!DOCTYPE nvidia_smi_log SYSTEM "x" [<!ENTITY e SYSTEM "file:///etc/passwd">]><nvidia_smi_log>&e;</nvidia_smi_log>',
    ],
)
def test_nvsmi_malformed_and_unsafe(bad):
    with pytest.raises(GpuctkError):
        parse_nvidia_smi_xml(bad)


@FUZZ
@given(st.text(max_size=300))
def test_nvsmi_fuzz_only_gpuctk_error(text):
    for doc in (
        text,
        f"<nvidia_smi_log>{text}</nvidia_smi_log>",
        f"<nvidia_smi_log><gpu id='x'><minor_number>{text}</minor_number></gpu></nvidia_smi_log>",
    ):
        try:
            info = parse_nvidia_smi_xml(doc)
        except GpuctkError:
            continue
        assert isinstance(info["gpus"], list) and all(isinstance(g, dict) for g in info["gpus"])


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=8),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "index",
                    "minor",
                    "uuid",
                    "mig_devices",
                    "gpu_instance_id",
                    "gpus",
                    "compute_instance_id",
                    "name",
                    "pci_bus_id",
                    "mig_enabled",
                ]
            ),
            c,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(JSONISH)
def test_inventory_fuzz_only_gpuctk_error(data):
    from gpuctk.discover.inventory import select_inventory

    try:
        inv = select_inventory({"gpus": data} if not isinstance(data, dict) else data)
    except GpuctkError:
        return
    assert isinstance(inv["gpus"], list)
