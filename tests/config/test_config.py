"""config.toml: schema, lookup, loading and upstream's rendering rules (§2)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gpuctk import _cachefile as cachefile
from gpuctk import config as C
from gpuctk.config import load as config_load
from gpuctk.config.render import _toml_value
from gpuctk.config.schema import COMMENTED_DEFAULTS, SCHEMA
from support.golden import UPDATE

DATA = Path(__file__).parent / "data"


def golden(name: str, text: str) -> None:
    path = DATA / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def test_default_config_has_every_schema_key():
    cfg = C.default_config()
    for key, (_t, default) in SCHEMA.items():
        value = C.get(cfg, key)
        if key not in ("nvidia-container-cli.ldconfig", "nvidia-container-cli.user"):
            assert value == default, key
    assert cfg["nvidia-container-runtime"]["runtimes"] == ["runc", "crun"]
    assert cfg["nvidia-container-runtime"]["sandbox"] == ""
    assert cfg["nvidia-container-cli"]["ldconfig"] in ("@/sbin/ldconfig", "@/sbin/ldconfig.real")


def test_default_rendering_matches_upstream_golden():
    cfg = C.default_config()
    cfg["nvidia-container-cli"]["ldconfig"] = "OVERRIDDEN"
    golden("default-ldconfig-overridden.toml", C.render(cfg))


def test_setting_debug_to_its_display_default_uncomments_it():
    cfg = C.default_config()
    cfg["nvidia-container-cli"]["ldconfig"] = "OVERRIDDEN"
    cfg["nvidia-container-cli"]["debug"] = "/var/log/nvidia-container-toolkit.log"
    cfg["nvidia-container-runtime"]["debug"] = "/var/log/nvidia-container-runtime.log"
    text = C.render(cfg, {"nvidia-container-cli.debug", "nvidia-container-runtime.debug"})
    lines = text.splitlines()
    assert 'debug = "/var/log/nvidia-container-toolkit.log"' in lines
    assert 'debug = "/var/log/nvidia-container-runtime.log"' in lines
    assert not any(line.startswith("#debug") for line in lines)


def test_empty_config_renders_only_commented_defaults():
    expected = """#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
#swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
#debug = "/var/log/nvidia-container-toolkit.log"
#ldcache = "/etc/ld.so.cache"
#no-cgroups = false
#path = "/usr/bin/nvidia-container-cli"
#root = "/run/nvidia/driver"
#user = "root:video"

[nvidia-container-runtime]
#debug = "/var/log/nvidia-container-runtime.log"
"""
    assert C.render({}) == expected


@pytest.mark.parametrize(
    ("key", "value", "commented"),
    [
        ("swarm-resource", "", True),
        ("swarm-resource", "DOCKER_RESOURCE_GPU", True),
        ("swarm-resource", "DOCKER_RESOURCE_GPUS", False),
        ("accept-nvidia-visible-devices-envvar-when-unprivileged", True, True),
        ("accept-nvidia-visible-devices-envvar-when-unprivileged", False, False),
        ("accept-nvidia-visible-devices-as-volume-mounts", True, False),
        ("nvidia-container-cli.root", "/run/nvidia/driver", True),
        ("nvidia-container-cli.root", "/opt/driver", False),
        ("nvidia-container-cli.no-cgroups", True, False),
        ("nvidia-container-runtime.debug", "/dev/null", True),
        ("nvidia-container-runtime.debug", "/tmp/rt.log", False),
    ],
)
def test_comment_rules(key, value, commented):
    cfg = C.default_config()
    C.set_value(cfg, key, value)
    name = key.rpartition(".")[2]
    lines = C.render(cfg).splitlines()
    if commented:
        assert f"#{name} = {_toml_value(COMMENTED_DEFAULTS[key])}" in lines
    else:
        assert f"{name} = {_toml_value(value)}" in lines


def test_explicit_keys_are_never_commented():
    cfg = C.default_config()
    text = C.render(cfg, {"swarm-resource", "nvidia-container-cli.root"})
    assert 'swarm-resource = ""' in text.splitlines()
    assert 'root = ""' in text.splitlines()


def test_rendered_default_round_trips_through_tomllib():
    cfg = C.default_config()
    data = tomllib.loads(C.render(cfg))
    assert data["nvidia-container-runtime"]["modes"]["cdi"]["spec-dirs"] == ["/etc/cdi", "/var/run/cdi"]


def test_features_and_extension_keys_render_only_when_set():
    cfg = C.default_config()
    text = C.render(cfg)
    assert "[features]" not in text and "sandbox" not in text and "no-pivot" not in text
    cfg["features"]["ignore-imex-channel-requests"] = True
    cfg["nvidia-container-runtime"]["sandbox"] = "gvisor"
    text = C.render(cfg)
    assert "[features]\nignore-imex-channel-requests = true\n" in text
    assert 'sandbox = "gvisor"' in text


def test_string_escaping():
    assert _toml_value('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert tomllib.loads("x = " + _toml_value('a"b\\c\n\t\x01'))["x"] == 'a"b\\c\n\t\x01'


# ------------------------------------------------------------------ lookup and loading
def test_lookup_order():
    assert C.config_path({"NVIDIA_CTK_CONFIG_FILE_PATH": "/x/c.toml", "XDG_CONFIG_HOME": "/y"}) == "/x/c.toml"
    assert C.config_path({"XDG_CONFIG_HOME": "/y"}) == "/y/nvidia-container-runtime/config.toml"
    assert C.config_path({}) == "/etc/nvidia-container-runtime/config.toml"
    assert C.config_path({"XDG_CONFIG_HOME": ""}) == "/etc/nvidia-container-runtime/config.toml"


def test_load_uses_env_path(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text('[nvidia-container-runtime]\nmode = "cdi"\n')
    monkeypatch.setenv("NVIDIA_CTK_CONFIG_FILE_PATH", str(p))
    assert C.load_config()["nvidia-container-runtime"]["mode"] == "cdi"


def test_absent_file_means_defaults(tmp_path):
    assert C.load_config(str(tmp_path / "missing.toml")) == C.default_config()
    with pytest.raises(C.ConfigError, match="not found"):
        C.read_config(str(tmp_path / "missing.toml"), required=True)


def test_file_overrides_defaults_and_reports_explicit_keys(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(
        'swarm-resource = "DOCKER_RESOURCE_GPUS"\n[nvidia-container-runtime]\ndebug = "/some/log"\n'
        '[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["/a"]\n'
    )
    cfg, explicit = C.read_config(str(p))
    assert cfg["swarm-resource"] == "DOCKER_RESOURCE_GPUS"
    assert cfg["nvidia-container-runtime"]["debug"] == "/some/log"
    assert cfg["nvidia-container-runtime"]["modes"]["cdi"]["spec-dirs"] == ["/a"]
    assert cfg["nvidia-container-runtime"]["modes"]["cdi"]["default-kind"] == "nvidia.com/gpu"
    assert explicit == {
        "swarm-resource",
        "nvidia-container-runtime.debug",
        "nvidia-container-runtime.modes.cdi.spec-dirs",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[nvidia-container-runtime]\nmodez = "cdi"\n', "unknown key 'nvidia-container-runtime.modez'"),
        ("bogus = 1\n", "unknown key 'bogus'"),
        (
            "[nvidia-container-runtime.modes.nope]\nx = 1\n",
            "unknown key 'nvidia-container-runtime.modes.nope'",
        ),
        ('disable-require = "yes"\n', "disable-require: expected a boolean"),
        ('[nvidia-container-runtime]\nruntimes = "runc"\n', "runtimes: expected a list of strings"),
        ('[nvidia-container-cli]\nldconfig = "/sbin/ldconfig"\n', "must start with '@'"),
        ('[nvidia-container-runtime]\nmode = "magic"\n', "nvidia-container-runtime.mode: 'magic'"),
        ('[nvidia-container-runtime]\nsandbox = "kata"\n', "nvidia-container-runtime.sandbox"),
        ("this is = = not toml", "invalid TOML"),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(C.ConfigError) as exc:
        C.load_config(str(p))
    assert message in str(exc.value)
    assert str(p) in str(exc.value)


def test_ldconfig_from_container_allowed_by_feature(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(
        '[nvidia-container-cli]\nldconfig = "/sbin/ldconfig"\n[features]\nallow-ldconfig-from-container = true\n'
    )
    assert C.load_config(str(p))["nvidia-container-cli"]["ldconfig"] == "/sbin/ldconfig"


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("disable-require", None, True),
        ("disable-require", "false", False),
        ("nvidia-container-runtime.runtimes", "a,b", ["a", "b"]),
        ("nvidia-container-runtime.runtimes", "", []),
        ("features.allow-unknown-oci-spec-fields", "nil", None),
        ("nvidia-container-runtime.mode", "cdi", "cdi"),
    ],
)
def test_parse_set_values(key, raw, expected):
    assert C.parse_value(key, raw) == expected


def test_parse_set_value_errors():
    with pytest.raises(C.ConfigError, match=r"unknown config key 'x\.y'"):
        C.parse_value("x.y", "1")
    with pytest.raises(C.ConfigError, match="expected a boolean"):
        C.parse_value("disable-require", "maybe")
    with pytest.raises(C.ConfigError, match="a value is required"):
        C.parse_value("nvidia-container-runtime.mode", None)


# ------------------------------------------------------------------ the CLI
def gpuctk(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpuctk.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_cli_default_and_in_place(tmp_path):
    r = gpuctk("config", "default")
    assert r.returncode == 0, r.stderr
    assert 'mode = "auto"' in r.stdout
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text('# my comment\n[nvidia-container-runtime]\nmode = "legacy"\n')
    r = gpuctk(
        "config",
        "--config-file",
        str(cfg_file),
        "--set",
        "nvidia-container-runtime.runtimes=crun:runc",
        "--set-list-separator",
        ":",
        "--set",
        "accept-nvidia-visible-devices-as-volume-mounts",
        "--in-place",
    )
    assert r.returncode == 0, r.stderr
    data = tomllib.loads(cfg_file.read_text())
    assert data["nvidia-container-runtime"]["mode"] == "legacy"
    assert data["nvidia-container-runtime"]["runtimes"] == ["crun", "runc"]
    assert data["accept-nvidia-visible-devices-as-volume-mounts"] is True


def test_cli_output_and_errors(tmp_path):
    out = tmp_path / "out.toml"
    r = gpuctk(
        "config",
        "--config-file",
        str(tmp_path / "none.toml"),
        "--set",
        "nvidia-container-runtime.sandbox=gvisor",
        "--output",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert 'sandbox = "gvisor"' in out.read_text()
    r = gpuctk(
        "config", "--set", "nvidia-container-runtime.nope=1", env={"NVIDIA_CTK_CONFIG_FILE_PATH": str(out)}
    )
    assert r.returncode == 1
    assert "unknown config key 'nvidia-container-runtime.nope'" in r.stderr
    assert "Traceback" not in r.stderr
    r = gpuctk(
        "config",
        "--set",
        "nvidia-container-runtime.sandbox=kata",
        env={"NVIDIA_CTK_CONFIG_FILE_PATH": str(out)},
    )
    assert r.returncode == 1 and "sandbox" in r.stderr


def test_cli_json_shows_every_key(tmp_path):
    import json

    r = gpuctk("config", "--json", env={"NVIDIA_CTK_CONFIG_FILE_PATH": str(tmp_path / "absent.toml")})
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["nvidia-container-runtime"]["modes"]["cdi"]["annotation-prefixes"] == ["cdi.k8s.io/"]
    assert data["features"]["ignore-imex-channel-requests"] is None


# ------------------------------------------------------------------ the parsed-config cache
def test_cache_hit_miss_and_invalidation(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cache))
    p = tmp_path / "c.toml"
    p.write_text('[nvidia-container-runtime]\nmode = "cdi"\n')
    assert C.load_config(str(p))["nvidia-container-runtime"]["mode"] == "cdi"
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    # a hit does not parse: prove it by making tomllib unusable
    monkeypatch.setattr(config_load, "read_config", lambda *a, **k: pytest.fail("cache not used"))
    assert C.load_config(str(p))["nvidia-container-runtime"]["mode"] == "cdi"
    monkeypatch.undo()
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cache))
    p.write_text('[nvidia-container-runtime]\nmode = "legacy"\n')  # new size/mtime: a miss
    assert C.load_config(str(p))["nvidia-container-runtime"]["mode"] == "legacy"


def test_cache_is_not_trusted_when_writable_by_others(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cache))
    p = tmp_path / "c.toml"
    p.write_text('[nvidia-container-runtime]\nmode = "cdi"\n')
    C.load_config(str(p))
    (f,) = cache.iterdir()
    f.chmod(0o666)
    monkeypatch.setattr(config_load, "read_config", lambda *a, **k: (C.default_config(), set()))
    assert C.load_config(str(p))["nvidia-container-runtime"]["mode"] == "auto"  # re-read, not the cache


def test_cache_disabled_and_bad_files_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")
    assert cachefile.cache_dir() is None
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cache))
    p = tmp_path / "c.toml"
    p.write_text("bogus = 1\n")
    with pytest.raises(C.ConfigError):
        C.load_config(str(p))
    with pytest.raises(C.ConfigError):
        C.load_config(str(p))
    assert not cache.exists() or not list(cache.iterdir())


def test_cache_keeps_few_entries(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cache))
    for i in range(config_load._CACHE_MAX_ENTRIES + 5):
        p = tmp_path / f"c{i}.toml"
        p.write_text(f'swarm-resource = "R{i}"\n')
        assert C.load_config(str(p))["swarm-resource"] == f"R{i}"
    assert len(list(cache.iterdir())) == config_load._CACHE_MAX_ENTRIES
