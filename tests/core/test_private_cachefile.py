"""gpuctk._cachefile: marshal is only ever read from files nobody else could have written."""

import os

from gpuctk import _cachefile as cachefile


def _path_for(prefix: str, identity: str) -> str:
    p = cachefile.path_for(prefix, identity)
    assert p is not None, "no cache dir"
    return p


def test_round_trip_and_pruning(tmp_path, monkeypatch):
    monkeypatch.setenv(cachefile.ENV_CACHE_DIR, str(tmp_path / "c"))
    paths = [_path_for("t-", f"/etc/x{i}") for i in range(5)]
    for i, p in enumerate(paths):
        cachefile.write(p, ("key", i), prefix="t-", keep=3)
    assert cachefile.read(paths[-1]) == ("key", 4)
    assert len(os.listdir(tmp_path / "c")) == 3
    assert oct(os.stat(tmp_path / "c").st_mode & 0o777) == "0o700"


def test_disabled_and_untrusted(tmp_path, monkeypatch):
    monkeypatch.setenv(cachefile.ENV_CACHE_DIR, "")
    assert cachefile.path_for("t-", "x") is None
    d = tmp_path / "c"
    d.mkdir()
    monkeypatch.setenv(cachefile.ENV_CACHE_DIR, str(d))
    p = _path_for("t-", "x")
    cachefile.write(p, {"a": 1}, prefix="t-", keep=3)
    assert cachefile.read(p) == {"a": 1}
    os.chmod(p, 0o666)  # writable by others: could have been planted
    assert cachefile.read(p) is None
    os.unlink(p)
    os.symlink(str(tmp_path / "elsewhere"), p)  # a symlink at the name is never followed
    (tmp_path / "elsewhere").write_bytes(b"\x00")
    assert cachefile.read(p) is None


def test_group_writable_dir_is_not_written(tmp_path, monkeypatch):
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    monkeypatch.setenv(cachefile.ENV_CACHE_DIR, str(d))
    cachefile.write(_path_for("t-", "x"), 1, prefix="t-", keep=3)
    assert os.listdir(d) == []
