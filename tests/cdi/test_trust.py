"""What the runtime shim (as root) trusts: spec files owned by root, not group/other-writable,
in directories that are the same (``Registry(trusted_only=True)``); cdi list/validate say why."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from gpuctk.cdi import Registry
from gpuctk.cdi.registry import trust_problem
from support.tools import require_root, venv_script

SPEC = {
    "cdiVersion": "0.5.0",
    "kind": "acme.io/gpu",
    "devices": [{"name": "0", "containerEdits": {"env": ["A=1"]}}],
}


@pytest.fixture
def spec_dir(tmp_path):
    require_root()
    d = tmp_path / "cdi"
    d.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    (d / "acme.json").write_text(json.dumps(SPEC))
    os.chmod(d / "acme.json", 0o644)
    return d


def _reg(d, **kw):
    return Registry([str(d)], trusted_only=True, **kw)


def test_root_owned_private_spec_is_used(spec_dir):
    assert trust_problem(str(spec_dir / "acme.json")) is None
    reg = _reg(spec_dir)
    assert reg.list_devices() == ["acme.io/gpu=0"] and reg.ignored() == {}


@pytest.mark.parametrize(
    "attack, reason",
    [
        ("chown-file", "the file is owned by uid 1000, not root"),
        ("chmod-file-g+w", "the file is writable by group or others (mode 0664)"),
        ("chmod-file-o+w", "the file is writable by group or others (mode 0646)"),
        ("chown-dir", "is owned by uid 1000, not root"),
        ("chmod-dir-o+w", "is writable by group or others (mode 0757)"),
        ("chmod-parent-g+w", "is writable by group or others (mode 0775)"),
    ],
)
def test_untrusted_spec_is_not_used_and_named(spec_dir, attack, reason):
    f = spec_dir / "acme.json"
    {
        "chown-file": lambda: os.chown(f, 1000, 1000),
        "chmod-file-g+w": lambda: os.chmod(f, 0o664),
        "chmod-file-o+w": lambda: os.chmod(f, 0o646),
        "chown-dir": lambda: os.chown(spec_dir, 1000, 1000),
        "chmod-dir-o+w": lambda: os.chmod(spec_dir, 0o757),
        "chmod-parent-g+w": lambda: os.chmod(spec_dir.parent, 0o775),
    }[attack]()
    reg = _reg(spec_dir)
    assert reg.list_devices() == []
    assert reason in reg.ignored()[str(f)]
    assert reg.errors()[str(f)][0].startswith("ignored: ")
    # without the option (a non-root consumer, a test) the spec is used
    assert Registry([str(spec_dir)]).list_devices() == ["acme.io/gpu=0"]


def test_symlink_to_a_user_writable_directory_is_not_used(spec_dir, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    os.chown(user, 1000, 1000)
    target = user / "real.json"
    target.write_text(json.dumps(SPEC))
    (spec_dir / "acme.json").unlink()
    os.symlink(target, spec_dir / "acme.json")
    reg = _reg(spec_dir)
    assert reg.list_devices() == [] and "uid 1000" in reg.ignored()[str(spec_dir / "acme.json")]


def test_sticky_root_directory_is_trusted(spec_dir):
    os.chmod(spec_dir.parent, 0o1777)  # like /tmp: others cannot rename root's entries
    assert _reg(spec_dir).list_devices() == ["acme.io/gpu=0"]


def test_cached_scan_misses_when_a_directory_becomes_untrusted(spec_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cache))
    old = os.stat(spec_dir / "acme.json").st_mtime_ns - 10_000_000_000
    os.utime(spec_dir / "acme.json", ns=(old, old))
    assert _reg(spec_dir, cache=True).list_devices() == ["acme.io/gpu=0"]
    assert _reg(spec_dir, cache=True).list_devices() == ["acme.io/gpu=0"]  # served from the cache
    os.chmod(spec_dir, 0o777)  # no spec file's stat changes
    assert _reg(spec_dir, cache=True).list_devices() == []


def _gpuctk(*args):
    return subprocess.run([venv_script("gpuctk"), *args], capture_output=True, text=True, timeout=60)


def test_cdi_list_and_validate_say_why_a_spec_is_ignored(spec_dir, monkeypatch):
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")
    f = spec_dir / "acme.json"
    os.chown(f, 1000, 1000)
    res = _gpuctk("cdi", "list", "--spec-dir", str(spec_dir))
    assert res.returncode == 0 and res.stdout == ""
    assert f"{f}: ignored: the file is owned by uid 1000, not root" in res.stderr
    res = _gpuctk("cdi", "validate", str(f))
    assert res.returncode == 0
    assert (
        f"{f}: warning: ignored by the runtime running as root: the file is owned by uid 1000" in res.stdout
    )
    res = _gpuctk("cdi", "validate", "--json", str(f))
    assert "uid 1000" in json.loads(res.stdout)["files"][0]["ignored"]


def test_the_shim_skips_an_untrusted_spec_and_logs_why(spec_dir, monkeypatch):
    """The runtime shim's use of the registry turns the check on and warns, naming the file."""
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")  # no scan cache in /run
    from gpuctk.config.load import default_config_typed
    from gpuctk.runtime.host import Host, ModifyError

    f = spec_dir / "acme.json"
    host = Host(default_config_typed())
    warnings: list[str] = []
    host.warn = warnings.append
    oci: dict = {"process": {"env": []}}
    assert host.inject_registry_devices(oci, ["acme.io/gpu=0"], [str(spec_dir)]) == ["acme.io/gpu=0"]
    assert oci["process"]["env"] == ["A=1"] and warnings == []
    os.chmod(f, 0o666)
    with pytest.raises(ModifyError, match=r"unresolvable CDI devices acme\.io/gpu=0"):
        host.inject_registry_devices({"process": {"env": []}}, ["acme.io/gpu=0"], [str(spec_dir)])
    assert warnings == [f"CDI spec {f} not used: the file is writable by group or others (mode 0666)"]
