"""config.toml: schema, lookup, loading and upstream's rendering rules (`api/config/v1/toml.go`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping
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


UNKNOWN_KEYS = [
    ('[nvidia-container-runtime]\nmodez = "cdi"\n', ["nvidia-container-runtime.modez"]),
    ("bogus = 1\n", ["bogus"]),
    ("[nvidia-container-runtime.modes.nope]\nx = 1\n", ["nvidia-container-runtime.modes.nope"]),
    # a key of an older upstream release, and one of a newer
    ("[nvidia-container-runtime]\nexperimental = false\n", ["nvidia-container-runtime.experimental"]),
    (
        '[nvidia-container-runtime.modes.cdi]\nfuture-key = ["x"]\n',
        ["nvidia-container-runtime.modes.cdi.future-key"],
    ),
    ("[brand-new-table]\na = 1\n[features]\nnew-flag = true\n", ["brand-new-table", "features.new-flag"]),
]


@pytest.mark.parametrize(("text", "keys"), UNKNOWN_KEYS)
def test_unknown_keys_are_ignored_with_one_warning_each(tmp_path, text, keys):
    p = tmp_path / "c.toml"
    p.write_text(
        text + '[nvidia-container-runtime.modes.cdi]\ndefault-kind = "acme.com/gpu"\n'
        if "modes.cdi]" not in text
        else text + 'default-kind = "acme.com/gpu"\n'
    )
    for load in (lambda w: C.load_config(str(p), warnings=w), lambda w: C.read_config(str(p), warnings=w)[0]):
        warnings: list[str] = []
        cfg = load(warnings)
        assert (
            cfg["nvidia-container-runtime"]["modes"]["cdi"]["default-kind"] == "acme.com/gpu"
        )  # rest applied
        assert warnings == [f"{p}: unknown key {k!r} (ignored)" for k in keys]
        assert get_no_unknown(cfg, keys)


def get_no_unknown(cfg: Mapping[str, object], keys: list[str]) -> bool:
    for k in keys:
        with pytest.raises(KeyError):
            C.get(cfg, k)
    return True


def test_unknown_key_without_a_list_goes_to_stderr(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text("[nvidia-container-runtime]\nexperimental = false\n")
    C.read_config(str(p))
    assert capsys.readouterr().err == (
        f"warning: {p}: unknown key 'nvidia-container-runtime.experimental' (ignored)\n"
    )


BAD_VALUES = [
    ('disable-require = "yes"\n', "disable-require", "disable-require: expected a boolean"),
    (
        '[nvidia-container-runtime]\nruntimes = "runc"\n',
        "nvidia-container-runtime.runtimes",
        "runtimes: expected a list of strings",
    ),
    (
        '[nvidia-container-cli]\nldconfig = "/sbin/ldconfig"\n',
        "nvidia-container-cli.ldconfig",
        "must start with '@'",
    ),
    (
        '[nvidia-container-runtime]\nmode = "magic"\n',
        "nvidia-container-runtime.mode",
        "nvidia-container-runtime.mode: 'magic'",
    ),
    (
        '[nvidia-container-runtime]\nsandbox = "kata"\n',
        "nvidia-container-runtime.sandbox",
        "nvidia-container-runtime.sandbox",
    ),
    ("nvidia-container-runtime = 1\n", "nvidia-container-runtime", "expected a table"),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD_VALUES)
def test_bad_values_name_file_and_key(tmp_path, text, key, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    for load in (C.load_config, C.read_config):
        with pytest.raises(C.ConfigError) as exc:
            load(str(p))
        assert message in str(exc.value)
        assert str(p) in str(exc.value)


@pytest.mark.parametrize(("text", "key", "message"), BAD_VALUES)
def test_bad_values_recorded_and_defaulted_when_asked(tmp_path, text, key, message):
    """The shim's view: a bad value keeps its default and is reported under its dotted key."""
    p = tmp_path / "c.toml"
    p.write_text(
        text + 'swarm-resource = "R"\n' if not text.startswith("nvidia-container-runtime =") else text
    )
    invalid: dict[str, str] = {}
    cfg = C.load_config(str(p), invalid=invalid)
    assert list(invalid) == [key]
    assert message in invalid[key] and str(p) in invalid[key]
    defaults = C.default_config()
    if key != "nvidia-container-runtime":
        assert C.get(cfg, key) == C.get(defaults, key)


def test_invalid_toml_names_the_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("this is = = not toml")
    with pytest.raises(C.ConfigError, match="invalid TOML") as exc:
        C.load_config(str(p), invalid={})
    assert str(p) in str(exc.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("a = " + "9" * 5000 + "\n"), "invalid TOML"),
        (lambda p: p.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n"), "invalid TOML"),
        (lambda p: p.write_text("a = {" * 50_000 + "}" * 50_000 + "\n"), "invalid TOML"),
        (lambda p: p.write_bytes(b"# " + b"x" * (2 << 20) + b"\n"), "larger than"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
        (lambda p: p.write_bytes(b"swarm-resource = '\xff'\n"), "invalid TOML"),
        # tomllib is quadratic in the parts of one key: these would take minutes
        (lambda p: p.write_text(".".join(["a"] * 200_000) + " = 1\n"), "dotted key with more than 32 parts"),
        (
            lambda p: p.write_text("[" + ".".join(["a"] * 200_000) + "]\n"),
            "table header with more than 32 parts",
        ),
    ],
    ids=[
        "huge-int",
        "deep-array",
        "deep-inline-table",
        "huge-file",
        "fifo",
        "directory",
        "dev-zero",
        "not-utf8",
        "long-dotted-key",
        "long-table-header",
    ],
)
def test_hostile_config_files_are_one_line_errors(tmp_path, make, message):
    p = tmp_path / "c.toml"
    make(p)
    for load in (C.load_config, C.read_config):
        with pytest.raises(C.ConfigError) as exc:
            load(str(p))
        text = str(exc.value)
        assert message in text and str(p) in text
        assert "\n" not in text and len(text) < 400


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
    monkeypatch.setattr(config_load, "_parse_file", lambda *a, **k: pytest.fail("cache not used"))
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
    monkeypatch.setattr(config_load, "_parse_file", lambda *a, **k: (C.default_config(), set()))
    assert C.load_config(str(p))["nvidia-container-runtime"]["mode"] == "auto"  # re-read, not the cache


def test_cache_disabled_and_bad_files_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")
    assert cachefile.cache_dir() is None
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", str(cache))
    p = tmp_path / "c.toml"
    p.write_text("bogus = = 1\n")
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


def test_cli_reports_unknown_keys_and_fails_only_with_strict(tmp_path):
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text('[nvidia-container-runtime]\nexperimental = false\nmode = "cdi"\n')
    r = gpuctk("config", "-c", str(cfg_file))
    assert r.returncode == 0, r.stderr
    assert 'mode = "cdi"' in r.stdout
    assert r.stderr == (
        f"gpuctk: warning: {cfg_file}: unknown key 'nvidia-container-runtime.experimental' (ignored)\n"
    )
    r = gpuctk("config", "-c", str(cfg_file), "--strict")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines()[-1].endswith(f"{cfg_file}: 1 unknown key (--strict)")
    cfg_file.write_text('[nvidia-container-runtime]\nmode = "cdi"\n')
    r = gpuctk("config", "-c", str(cfg_file), "--strict")
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_cli_config_file_never_blocks_on_a_fifo_or_reads_a_device(tmp_path, kind):
    p = tmp_path / "config.toml"
    if kind == "fifo":
        os.mkfifo(p)  # no writer: an open() without O_NONBLOCK would hang here forever
    else:
        p.symlink_to("/dev/zero")
    r = subprocess.run(
        [sys.executable, "-m", "gpuctk.cli.main", "config", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip().endswith(f"{p}: cannot read config file: not a regular file")
    assert len(r.stderr.strip().splitlines()) == 1


def test_typed_shape_has_every_schema_key_and_nothing_else():
    """gpuctk.config.types.ConfigDict (for mypy) and SCHEMA (at run time) name the same keys."""
    import typing

    from gpuctk.config.types import ConfigDict

    def keys(td: object, prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for name, hint in typing.get_type_hints(td).items():
            if typing.is_typeddict(hint):
                out.update(keys(hint, f"{prefix}{name}."))
            else:
                out[f"{prefix}{name}"] = hint
        return out

    hints = keys(ConfigDict)
    assert set(hints) == set(SCHEMA)
    expected = {"bool": bool, "str": str, "list": list[str], "feature": bool | None}
    assert {k: expected[t] for k, (t, _default) in SCHEMA.items()} == hints


def test_legacy_hook_reads_a_config_with_unknown_keys(tmp_path):
    """The legacy hook's config read (on the container path) warns about unknown keys and goes on:
    a container without a GPU request exits 0; a wrong type still fails, naming file and key."""
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text("[nvidia-container-runtime]\nexperimental = false\n[brand-new]\nx = 1\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        '{"ociVersion": "1.0.2", "process": {"env": ["PATH=/bin"]}, "root": {"path": "rootfs"}}'
    )
    state = f'{{"ociVersion": "1.0.2", "id": "x", "pid": 1, "bundle": "{bundle}"}}'
    hook = [sys.executable, "-c", "import sys; from gpuctk.hooks.legacy import main; sys.exit(main())"]
    r = subprocess.run(
        [*hook, "--config", str(cfg_file), "prestart"],
        input=state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert f"{cfg_file}: unknown key 'nvidia-container-runtime.experimental' (ignored)" in r.stderr
    assert f"{cfg_file}: unknown key 'brand-new' (ignored)" in r.stderr
    cfg_file.write_text('[nvidia-container-cli]\nload-kmods = "yes"\n')
    r = subprocess.run(
        [*hook, "--config", str(cfg_file), "prestart"],
        input=state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert f"{cfg_file}: nvidia-container-cli.load-kmods: expected a boolean" in r.stderr
