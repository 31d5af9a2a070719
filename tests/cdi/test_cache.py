"""The parsed-spec cache behind ``Registry(cache=True)`` (gpuctk.cdi.cache)."""

import json
import os
import subprocess
import sys

import pytest

from gpuctk.cdi import Registry, cache


def spec(kind="vendor.com/gpu", names=("0", "1"), env="X=1"):
    return json.dumps(
        {
            "cdiVersion": "0.5.0",
            "kind": kind,
            "devices": [{"name": n, "containerEdits": {"env": [f"DEV_{n}=1"]}} for n in names],
            "containerEdits": {"env": [env]},
        }
    )


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch):
    monkeypatch.setattr(cache, "RACY_NS", 0)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    cdir = tmp_path / "cache"
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cdir))
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run.mkdir()
    (etc / "a.json").write_text(spec())
    (run / "b.yaml").write_text(
        "cdiVersion: 0.5.0\nkind: other.com/x\ndevices:\n- name: d\n  containerEdits:\n    env: [Y=2]\n"
    )
    (run / "bad.json").write_text("{not json")
    return [str(etc), str(run)], cdir


def state(reg):
    return reg.list_devices(), reg.errors(), [(s.source, s.priority, s.to_dict()) for s in reg.specs()]


def cache_files(cdir):
    return sorted(p for p in os.listdir(cdir) if p.startswith("cdi-")) if cdir.exists() else []


def test_cached_scan_equals_fresh_scan(setup):
    dirs, cdir = setup
    fresh = state(Registry(dirs))
    assert cache_files(cdir) == []  # cache is opt-in
    first = state(Registry(dirs, cache=True))
    assert len(cache_files(cdir)) == 1
    hit = state(Registry(dirs, cache=True))
    assert fresh == first == hit
    assert "bad.json" in " ".join(hit[1])


def test_hit_does_not_read_spec_files(setup, monkeypatch):
    dirs, _ = setup
    Registry(dirs, cache=True)
    from gpuctk.cdi import registry

    def boom(*a, **k):
        raise AssertionError("spec file parsed despite a valid cache")

    monkeypatch.setattr(registry, "load_spec", boom)
    assert Registry(dirs, cache=True).list_devices() == [
        "other.com/x=d",
        "vendor.com/gpu=0",
        "vendor.com/gpu=1",
    ]


@pytest.mark.parametrize("change", ["rewrite", "add", "remove", "chmod"])
def test_any_change_misses(setup, change):
    dirs, _ = setup
    Registry(dirs, cache=True)
    path = os.path.join(dirs[0], "a.json")
    if change == "rewrite":
        with open(path, "w") as f:  # same size, new content
            f.write(spec(env="X=2"))
    elif change == "add":
        with open(os.path.join(dirs[0], "c.json"), "w") as f:
            f.write(spec(kind="third.com/t"))
    elif change == "remove":
        os.unlink(path)
    else:
        os.chmod(path, 0o600)  # ctime changes: content may have been swapped in between
    assert state(Registry(dirs, cache=True)) == state(Registry(dirs))


def test_untrusted_cache_file_is_ignored(setup, monkeypatch):
    dirs, cdir = setup
    Registry(dirs, cache=True)
    (name,) = cache_files(cdir)
    path = cdir / name
    os.chmod(path, 0o666)  # writable by others: never given to marshal
    from gpuctk.cdi import registry

    calls = []
    real = registry.load_spec
    monkeypatch.setattr(registry, "load_spec", lambda *a: calls.append(a) or real(*a))  # type: ignore[func-returns-value]
    Registry(dirs, cache=True)
    assert calls  # a miss: the specs were read again


def test_symlinked_or_corrupt_cache_is_ignored(setup):
    dirs, cdir = setup
    Registry(dirs, cache=True)
    (name,) = cache_files(cdir)
    path = cdir / name
    path.write_bytes(b"\x00garbage")
    assert state(Registry(dirs, cache=True)) == state(Registry(dirs))
    target = cdir / "elsewhere"
    os.replace(path, target)
    os.symlink(target, path)
    assert state(Registry(dirs, cache=True)) == state(Registry(dirs))


def test_disabled_by_empty_env(setup, monkeypatch):
    dirs, cdir = setup
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")
    assert cache.cache_dir() is None
    Registry(dirs, cache=True)
    assert cache_files(cdir) == []


def test_unreadable_dir_is_not_cached(setup, tmp_path):
    dirs, cdir = setup
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    reg = Registry([str(not_a_dir), *dirs], cache=True)
    assert cache_files(cdir) == []
    assert str(not_a_dir) in reg.errors()


def test_cached_yaml_spec_does_not_import_yaml(setup):
    """A YAML spec served from the cache keeps the runtime's create path stdlib-only."""
    dirs, _ = setup
    Registry(dirs, cache=True)
    code = (
        "import sys\nstart = set(sys.modules)\nfrom gpuctk.cdi.registry import Registry\n"
        f"r = Registry({dirs!r}, cache=True)\nassert 'other.com/x=d' in r.list_devices()\n"
        "print(sorted(m for m in set(sys.modules) - start if m.split('.')[0] in ('yaml', 'json', 're')))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_shared_cache_dir_is_never_written(tmp_path, monkeypatch):
    """A cache dir others can write (GPUCTK_CONFIG_CACHE_DIR=/tmp…) could hold a planted
    symlink at the cache file's name; nothing is written there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(shared))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "a.json").write_text(spec())
    os.symlink(victim, cache._file_for([str(specs)]))  # type: ignore[arg-type]
    Registry([str(specs)], cache=True)
    assert victim.read_text() == "precious"
    assert not cache.trusted_dir(str(shared))


def test_read_errors_are_not_cached(setup, monkeypatch):
    dirs, cdir = setup
    from gpuctk.cdi import registry
    from gpuctk.cdi.errors import CDIError

    real = registry.load_spec

    def flaky(path, prio=0):
        if path.endswith("a.json"):
            raise CDIError(f'failed to read CDI Spec "{path}": Input/output error')
        return real(path, prio)

    monkeypatch.setattr(registry, "load_spec", flaky)
    Registry(dirs, cache=True)
    assert cache_files(cdir) == []
    monkeypatch.setattr(registry, "load_spec", real)
    assert "vendor.com/gpu=0" in Registry(dirs, cache=True).list_devices()


def test_racily_fresh_files_are_not_cached(setup, monkeypatch):
    """A spec changed within the last RACY_NS could change again in the same timestamp tick
    with an identical stat; such a scan is served but not stored."""
    dirs, cdir = setup
    monkeypatch.setattr(cache, "RACY_NS", 3600 * 10**9)
    Registry(dirs, cache=True)
    assert cache_files(cdir) == []
    old = 1_000_000_000
    for d in dirs:
        for name in os.listdir(d):
            os.utime(os.path.join(d, name), (old, old))
    # ctime is still fresh (utime sets it to now): still not stored
    Registry(dirs, cache=True)
    assert cache_files(cdir) == []
