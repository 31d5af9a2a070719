"""Attack fixtures for hostile *content* (not paths): ELF notes built to crash the parser or
the decision rules, and ld.so.conf include trees built to make the hook read without end.
A hook may refuse such input, but never crash with an internal error or hang."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk.hooks import ldconf
from gpuctk.hooks.compat import use_compat
from gpuctk.hooks.confine import ConfineError, Root
from gpuctk.hooks.elfnote import ElfError, cuda_compat_note
from support.hooks import elf_with_sections, note_bytes, write

SECTION = ".note.cuda.fwd_compatibility"


def _elf(desc: bytes) -> bytes:
    return elf_with_sections([(SECTION, 7, note_bytes(b"NVIDIA Corporation", desc))])


def test_deeply_nested_note_json_is_an_elf_error():
    # the C JSON scanner recurses per nesting level: RecursionError is not a ValueError
    desc = b"[" * 200_000 + b"]" * 200_000
    try:
        note = cuda_compat_note(_elf(b'{"Driver": ' + desc + b"}"))
    except ElfError:
        return
    assert isinstance(note, dict)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    driver=json_values,
    cuda=json_values,
    compat=st.sampled_from([None, "550.90.07", "550.90"]),
    host=st.sampled_from([None, "550.54.15", "535.104.05"]),
    host_cuda=st.sampled_from([None, "12.2"]),
)
def test_decision_rules_survive_hostile_note_values(driver, cuda, compat, host, host_cuda):
    note = {"Driver": driver, "CUDA Version": cuda}
    assert use_compat(note, compat, host, host_cuda) in (True, False)


def test_unicode_digit_driver_entry():
    # "²".isdigit() is True but int("²") raises
    assert use_compat({"Driver": ["²", 550]}, "550.90.07", "550.54.15", None) is True
    assert use_compat({"Driver": 550}, "550.90.07", "550.54.15", None) is False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_note_section_fuzz_never_crashes(desc_section):
    data = elf_with_sections([(SECTION, 7, desc_section)])
    try:
        note = cuda_compat_note(data)
    except ElfError:
        return
    assert note is None or isinstance(note, dict)


def _counting_reads(monkeypatch) -> list[int]:
    reads: list[int] = []
    real = Root.read_bytes

    def counting(self, path, limit=64 << 20, **kw):
        data = real(self, path, limit, **kw)
        reads.append(len(data))
        return data

    monkeypatch.setattr(Root, "read_bytes", counting)
    return reads


def test_ld_so_conf_include_tree_is_read_within_a_budget(tmp_path, monkeypatch):
    # a hostile image: a huge (sparse) conf file in an include dir. Reading all of it
    # (64 MiB before the fix) would keep a root hook busy for minutes.
    root = tmp_path / "rootfs"
    write(str(root / "etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n/first\n")
    d = root / "etc/ld.so.conf.d"
    d.mkdir(parents=True)
    for i in range(100):
        (d / f"{i:05d}.conf").write_text(f"/lib{i}\n")
    big = d / "00000-big.conf"
    with open(big, "wb") as f:
        f.write(b"/big-start\n")
        f.truncate(10 << 30)  # 10 GiB, sparse
    reads = _counting_reads(monkeypatch)
    with Root(str(root)) as r:
        dirs = ldconf._conf_dirs(r, "/etc/ld.so.conf", set())
    assert "/first" in dirs and "/big-start" in dirs and "/lib99" in dirs
    assert sum(reads) <= ldconf.CONF_MAX_BYTES + len(reads)
    assert os.path.getsize(big) == 10 << 30


@pytest.mark.parametrize(
    "tree",
    ["many_files", "many_includes", "many_entries"],
)
def test_ld_so_conf_tree_over_budget_fails_closed(tmp_path, monkeypatch, tree):
    """A conf tree larger than any real one is refused with one error, after a bounded amount of
    work (80 000 ``include`` lines used to keep the hook listing directories for minutes)."""
    root = tmp_path / "rootfs"
    d = root / "etc/ld.so.conf.d"
    d.mkdir(parents=True)
    if tree == "many_files":
        write(str(root / "etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n")
        for i in range(ldconf.CONF_MAX_FILES + 10):
            (d / f"{i:05d}.conf").write_text(f"/lib{i}\n")
    elif tree == "many_includes":
        write(str(root / "etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.nothing\n" * 80_000)
    else:
        write(str(root / "etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.nothing\n")
        for i in range(ldconf.CONF_MAX_ENTRIES + 1):
            os.close(os.open(d / f"{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    reads = _counting_reads(monkeypatch)
    with Root(str(root)) as r, pytest.raises(ldconf.ConfBudgetError) as exc:
        ldconf._conf_dirs(r, "/etc/ld.so.conf", set())
    assert "refusing" in str(exc.value) and "\n" not in str(exc.value)
    assert len(reads) <= ldconf.CONF_MAX_FILES


def test_include_pattern_longer_than_path_max_names_nothing(tmp_path):
    root = tmp_path / "rootfs"
    write(str(root / "etc/ld.so.conf"), "include /etc/" + "*" * (64 << 10) + "\n/kept\n")
    with Root(str(root)) as r:
        assert ldconf._conf_dirs(r, "/etc/ld.so.conf", set()) == ["/kept"]


@pytest.mark.parametrize("fallback", [False, True], ids=["openat2", "fallback"])
def test_nul_byte_in_include_line_is_not_a_traceback(tmp_path, fallback):
    root = tmp_path / "rootfs"
    write(str(root / "etc/ld.so.conf"), "include /etc/a\0b/*.conf\n/x\0y\n/kept\n")
    write(str(root / "etc/a/x.conf"), "/never\n")
    with Root(str(root), fallback=fallback) as r:
        dirs = ldconf._conf_dirs(r, "/etc/ld.so.conf", set())
        assert "/kept" in dirs and "/never" not in dirs
        with pytest.raises(ConfineError):
            r.read_bytes("/etc/a\0b")


def test_huge_file_is_refused_not_rewritten_truncated(tmp_path):
    # e.g. a 10 GiB (sparse) /etc/ld-musl-x86_64.path: reading a prefix and renaming the
    # result over it used to silently cut the image's file to 64 MiB
    root = tmp_path / "rootfs"
    p = root / "etc/ld-musl-x86_64.path"
    write(str(p), "/lib\n")
    with open(p, "r+b") as f:
        f.truncate(10 << 30)
    with Root(str(root)) as r, pytest.raises(ConfineError):
        r.append_lines("/etc/ld-musl-x86_64.path", ["/usr/lib/nv"])
    assert os.path.getsize(p) == 10 << 30
