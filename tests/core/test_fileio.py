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
