"""enable-cuda-compat: the ELF note reader and every branch of the decision rules, on ELF
files built by the tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk.hooks.compat import enable_cuda_compat, use_compat
from gpuctk.hooks.confine import Root
from gpuctk.hooks.elfnote import ElfError, cuda_compat_note, parse_notes, read_section
from support.hooks import (
    cuda_compat_elf,
    elf_with_sections,
    make_hook_bundle,
    note_bytes,
    read_file,
    run_hook,
    write,
)

NOTE = {"CUDA Version": "12.4", "Driver": [535, 550], "Device": [], "Format": 1}


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("elf64", [True, False])
def test_note_roundtrip(big_endian, elf64):
    data = cuda_compat_elf(NOTE, big_endian=big_endian, elf64=elf64)
    assert cuda_compat_note(data) == NOTE


def test_no_note_section():
    assert cuda_compat_note(cuda_compat_elf(None)) is None


def test_other_owner_ignored():
    sec = note_bytes(b"GNU", b"\x01\x02\x03\x04") + note_bytes(b"Someone", b'{"CUDA Version": "1"}')
    data = elf_with_sections([(".note.cuda.fwd_compatibility", 7, sec)])
    assert cuda_compat_note(data) is None
    assert [o for o, _, _ in parse_notes(read_section(data, ".note.cuda.fwd_compatibility") or b"")] == [
        b"GNU",
        b"Someone",
    ]


@pytest.mark.parametrize("data", [b"", b"MZ" + b"\0" * 100, b"\x7fELF\x09\x01" + b"\0" * 60])
def test_malformed_elf(data):
    with pytest.raises(ElfError):
        cuda_compat_note(data)


def test_bad_json_desc():
    sec = note_bytes(b"NVIDIA Corporation", b"{not json")
    with pytest.raises(ElfError):
        cuda_compat_note(elf_with_sections([(".note.cuda.fwd_compatibility", 7, sec)]))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_reader_never_crashes(blob):
    try:
        cuda_compat_note(b"\x7fELF\x02\x01" + blob)
    except ElfError:
        pass


# (note, compat version, host driver, host cuda) -> use?
DECISIONS = [
    # with the note, both driver versions known: host major listed AND compat newer
    (NOTE, "550.90.07", "550.54.15", None, True),
    (NOTE, "550.90.07", "550.54.15", "12.2", True),
    (NOTE, "550.54.15", "550.54.15", None, False),  # not newer
    (NOTE, "550.40.00", "550.54.15", None, False),  # older
    (NOTE, "560.35.03", "545.23.08", None, False),  # host major not in Driver list
    (NOTE, "550.90", "535.104.05", None, True),  # two-part compat version
    # with the note, host driver version unknown: compare CUDA versions
    (NOTE, "550.90.07", None, "12.2", True),
    (NOTE, "550.90.07", None, "12.4", False),
    (NOTE, "550.90.07", None, "12.6", False),
    (NOTE, "550.90.07", None, None, False),
    # with the note, compat version unknown (unparsable)
    (NOTE, "x.y", "550.54.15", "12.2", True),
    (NOTE, "x.y", "550.54.15", None, False),
    ({**NOTE, "CUDA Version": "garbage"}, "x.y", "550.54.15", "12.2", False),
    # without the note
    (None, "550.90.07", "535.104.05", None, True),  # host major older
    (None, "550.90.07", "550.54.15", None, False),  # same major
    (None, "550.90.07", "560.28.03", None, False),
    (None, "550.90.07", "535.104.05", "12.2", False),  # host CUDA version given -> never
    (None, "550.90.07", None, None, False),
]


@pytest.mark.parametrize("note,compat,host,host_cuda,expected", DECISIONS)
def test_decision_rules(note, compat, host, host_cuda, expected):
    assert use_compat(note, compat, host, host_cuda) is expected


def _compat_root(tmp_path, note, libname="libcuda.so.550.90.07", compat_dir="/usr/local/cuda/compat"):
    b = make_hook_bundle(str(tmp_path))
    write(b.path(f"{compat_dir}/{libname}"), cuda_compat_elf(note))
    os.symlink(libname, b.path(f"{compat_dir}/libcuda.so.1"))  # links are not candidates
    return b


def _compat_confs(b):
    d = b.path("/etc/ld.so.conf.d")
    if not os.path.isdir(d):
        return []
    return [read_file(os.path.join(d, n)) for n in sorted(os.listdir(d)) if n.startswith("00-compat-")]


def test_hook_writes_conf_when_used(tmp_path):
    b = _compat_root(tmp_path, NOTE)
    p = run_hook(b, "enable-cuda-compat", "--host-driver-version=550.54.15")
    assert p.returncode == 0, p.stderr
    assert _compat_confs(b) == ["/usr/local/cuda/compat\n"]
    assert (
        oct(
            os.stat(b.path("/etc/ld.so.conf.d/" + os.listdir(b.path("/etc/ld.so.conf.d"))[0])).st_mode & 0o777
        )
        == "0o644"
    )


def test_hook_custom_root_and_cuda_version(tmp_path):
    b = _compat_root(tmp_path, NOTE, compat_dir="/opt/compat")
    p = run_hook(
        b, "enable-cuda-compat", "--host-cuda-version", "12.2", "--cuda-compat-container-root", "/opt/compat"
    )
    assert p.returncode == 0, p.stderr
    assert _compat_confs(b) == ["/opt/compat\n"]


@pytest.mark.parametrize("args", [[], ["--host-driver-version", "560.28.03"]])
def test_hook_noop_cases(tmp_path, args):
    b = _compat_root(tmp_path, NOTE)
    assert run_hook(b, "enable-cuda-compat", *args).returncode == 0
    assert _compat_confs(b) == []


def test_hook_no_compat_dir_or_two_libs(tmp_path):
    b = make_hook_bundle(str(tmp_path))
    assert run_hook(b, "enable-cuda-compat", "--host-driver-version", "535.1.1").returncode == 0
    assert _compat_confs(b) == []
    write(b.path("/usr/local/cuda/compat/libcuda.so.550.1.1"), cuda_compat_elf(NOTE))
    write(b.path("/usr/local/cuda/compat/libcuda.so.555.2.2"), cuda_compat_elf(NOTE))
    p = run_hook(b, "enable-cuda-compat", "--host-driver-version", "535.1.1")
    assert p.returncode == 0 and "expected one" in p.stderr
    assert _compat_confs(b) == []


def test_compat_dir_link_outside_stays_inside(tmp_path):
    b = make_hook_bundle(str(tmp_path / "c"))
    host = tmp_path / "host-compat"
    write(str(host / "libcuda.so.550.90.07"), cuda_compat_elf(None))
    os.makedirs(b.path("/usr/local/cuda"))
    os.symlink(str(host), b.path("/usr/local/cuda/compat"))  # resolves inside the root: missing there
    with Root(b.root) as r:
        assert enable_cuda_compat(r, "535.1.1", None) is None


def test_cuda_symlink_compat_conf_names_the_link_path(tmp_path):
    """/usr/local/cuda is a symlink to cuda-13.1 (as CUDA images ship it). Upstream writes the
    resolved directory (under the link target); gpuctk writes the path it was given, which
    the container's loader resolves through the same link (docs/compatibility.md, Hooks)."""
    b = make_hook_bundle(str(tmp_path))
    write(b.path("/usr/local/cuda-13.1/compat/libcuda.so.580.65.06"), cuda_compat_elf(None))
    os.symlink("cuda-13.1", b.path("/usr/local/cuda"))
    p = run_hook(b, "enable-cuda-compat", "--host-driver-version", "535.104.05")
    assert p.returncode == 0, p.stderr
    confs = _compat_confs(b)
    assert len(confs) == 1
    assert confs[0] == "/usr/local/cuda/compat\n"
