import errno
import os
import stat
import threading
from typing import Any

import pytest

from gpuctk.fileio import atomic_write


def test_new_file_gets_0644_and_content(tmp_path):
    p = tmp_path / "a.json"
    atomic_write(str(p), "x")
    assert p.read_text() == "x"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_existing_mode_is_kept_and_no_temp_left(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("old")
    os.chmod(p, 0o600)
    atomic_write(str(p), b"new")
    assert p.read_text() == "new"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["config.json"]


def test_explicit_mode_wins(tmp_path):
    p = tmp_path / "f"
    p.write_text("old")
    atomic_write(str(p), "new", mode=0o755)
    assert stat.S_IMODE(p.stat().st_mode) == 0o755


def test_symlink_target_is_replaced_and_link_kept(tmp_path):
    target = tmp_path / "real.toml"
    target.write_text("a")
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    atomic_write(str(link), "b")
    assert link.is_symlink()
    assert target.read_text() == "b"


def test_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read)
    reader.start()
    atomic_write(str(fifo), "through")
    reader.join(timeout=10)
    assert got == [b"through"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dev_null_stays_a_device():
    atomic_write("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        atomic_write(str(tmp_path), "x")


def test_failed_write_leaves_original_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "f"
    p.write_text("original")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write(str(p), "new")
    assert p.read_text() == "original"
    assert os.listdir(tmp_path) == ["f"]


def test_not_durable_skips_fsync_but_still_replaces(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    p = tmp_path / "config.json"
    p.write_text("old")
    atomic_write(str(p), "new", durable=False)
    assert p.read_text() == "new" and calls == []
    atomic_write(str(p), "newer")
    assert p.read_text() == "newer" and len(calls) == 2


def test_load_json_errors_are_one_line_and_name_the_file(tmp_path):
    from gpuctk.errors import GpuctkError
    from gpuctk.fileio import load_json

    good = tmp_path / "a.json"
    good.write_text('{"a": [1]}')
    assert load_json(str(good), "thing") == {"a": [1]}
    cases: dict[str, tuple[Any, str]] = {
        "bad.json": ("{not json", "bad.json: invalid JSON: line 1 column 2: "),
        "deep.json": ("[" * 100000 + "]" * 100000, "deep.json: invalid JSON: nested too deeply"),
        "latin1.json": (b'{"a": "\xff"}', "latin1.json: cannot read thing: not UTF-8 text"),
    }
    for name, (content, expected) in cases.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(GpuctkError) as exc:
            load_json(str(p), "thing")
        assert expected in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(GpuctkError, match=r"missing.json: cannot read thing: No such file"):
        load_json(str(tmp_path / "missing.json"), "thing")
    with pytest.raises(GpuctkError, match="cannot read thing: Is a directory"):
        load_json(str(tmp_path), "thing")


# ------------------------------------------------------------------ bounded reads, locks, temp files
def test_read_regular_refuses_a_fifo_without_blocking(tmp_path):
    from gpuctk.fileio import read_regular

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    with pytest.raises(OSError, match="not a regular file: a FIFO"):
        read_regular(str(fifo))


def test_read_regular_caps_the_size_before_reading(tmp_path):
    from gpuctk.fileio import read_regular

    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(2 << 20)
    with pytest.raises(OSError, match="larger than 1 MiB"):
        read_regular(str(big), 1 << 20)
    assert read_regular(str(big), 4 << 20) == b"\0" * (2 << 20)
    with pytest.raises(OSError, match="not a regular file: a character device"):
        read_regular("/dev/zero")


def test_read_regular_errors_carry_their_kind_for_the_callers_wording(tmp_path):
    """Every reader of user files maps these to its own one-line reason (file and what)."""
    from gpuctk.fileio import FileTooLargeError, NotRegularFileError, read_regular

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError) as not_regular:
        read_regular(str(fifo))
    assert not_regular.value.kind == "a FIFO" and not_regular.value.errno == errno.EINVAL
    big = tmp_path / "big"
    big.write_bytes(b"x" * 3000)
    with pytest.raises(FileTooLargeError) as too_large:
        read_regular(str(big), 1024)
    assert (too_large.value.size, too_large.value.limit, too_large.value.errno) == (3000, 1024, errno.EFBIG)
    with pytest.raises(IsADirectoryError):
        read_regular(str(tmp_path))
    with pytest.raises(OSError, match="NUL byte in path"):
        read_regular(str(tmp_path / "a\0b"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": ' + "1" * 5000 + "}", "integer with 5000 digits"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ("[" * 70 + "]" * 70, r"nested too deeply \(more than 64 levels\)"),
        ("{", "line 1 column 2"),
    ],
    ids=["bigint", "surrogate", "deep", "syntax"],
)
def test_decode_json_errors_are_one_line_gpuctk_errors(text, message):
    from gpuctk.errors import GpuctkError
    from gpuctk.fileio import decode_json

    with pytest.raises(GpuctkError, match=message) as exc:
        decode_json(text, "f.json")
    assert str(exc.value).startswith("f.json: invalid JSON: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("".join(f"k{i} = 1\n" for i in range(4001)), "more than 4000 keys"),
        ("".join(f"[t{i}]\n" for i in range(501)), "more than 500 tables"),
        ("[" + ".".join(["a"] * 40) + "]\n", "table header with more than 32 parts"),
        ("a = " + "[" * 65 + "]" * 65 + "\n", "nested too deeply"),
    ],
    ids=["keys", "tables", "header-parts", "deep"],
)
def test_toml_shape_is_capped_before_parsing(text, message):
    from gpuctk.errors import GpuctkError
    from gpuctk.fileio import check_toml_shape

    with pytest.raises(GpuctkError, match=message):
        check_toml_shape(text, "c.toml")
    check_toml_shape('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n', "c.toml")


def test_error_messages_escape_control_characters():
    from gpuctk.errors import GpuctkError

    assert str(GpuctkError('f: field "a\nb\x1b[31m": bad')) == 'f: field "a\\nb\\x1b[31m": bad'


def test_lock_is_reentrant_and_leaves_no_lock_file(tmp_path):
    from gpuctk.filelock import FileLock, lock_path

    target = tmp_path / "config.toml"
    with FileLock(str(target)):
        assert os.path.exists(lock_path(str(target)))
        with FileLock([str(target), str(tmp_path / "other")]):  # the same process again: no deadlock
            pass
        assert os.path.exists(lock_path(str(target)))  # still held by the outer one
    assert os.listdir(tmp_path) == []


def test_lock_beside_a_missing_directory_creates_no_directory(tmp_path):
    from gpuctk.filelock import FileLock, lock_path

    target = tmp_path / "conf.d" / "99-nvidia.toml"
    assert lock_path(str(target)) == str(tmp_path / ".conf.d.gpuctk-lock")
    with FileLock(str(target)):
        assert not (tmp_path / "conf.d").exists()


def test_stale_temps_of_the_file_only_are_removed(tmp_path):
    from gpuctk.filelock import remove_stale_temps

    names = [
        ".config.toml.0123456789ab.tmp",  # atomic_write's, of config.toml
        ".config.toml.gpuctk-backup-20260101T000000.000000Z.0123456789ab.tmp",  # of its backup
        "..config.toml.gpuctk-journal.0123456789ab.tmp",  # of its journal
        ".config.toml.gpuctk-lock",  # an unheld lock a killed run left
        ".other.toml.0123456789ab.tmp",  # another file's: kept
        ".config.toml.xyz.tmp",  # not a temp-file name: kept
    ]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(str(tmp_path / "config.toml"))
    assert sorted(os.path.basename(p) for p in removed) == sorted(names[:4])
    assert sorted(os.listdir(tmp_path)) == sorted(names[4:])


def test_copy_atomic_keeps_bytes_and_mode(tmp_path):
    from gpuctk.fileio import copy_atomic

    src = tmp_path / "a"
    src.write_bytes(b"x\r\ny")
    os.chmod(src, 0o600)
    copy_atomic(str(src), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"x\r\ny"
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600
