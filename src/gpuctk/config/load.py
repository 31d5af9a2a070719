"""Find, read and validate the toolkit's config.toml (tomllib; on the container path, so stdlib only).

``load_config()`` returns a nested plain dict holding every key of the schema with defaults
filled in, keyed by the TOML names (``cfg["nvidia-container-runtime"]["mode"]``). The parsed
result is cached (``gpuctk._cachefile``) so a container start does not pay for tomllib.
"""

from __future__ import annotations

import os

from gpuctk.config.schema import (
    BOOL,
    FEATURE,
    LIST,
    SCHEMA,
    STR,
    VALID_CUDA_COMPAT_MODES,
    VALID_MODES,
    VALID_SANDBOXES,
    host_defaults,
)
from gpuctk.errors import GpuctkError

ENV_CONFIG_PATH = "NVIDIA_CTK_CONFIG_FILE_PATH"
_TABLE_PREFIXES = frozenset(k.rsplit(".", i)[0] for k in SCHEMA for i in range(1, k.count(".") + 1))


class ConfigError(GpuctkError):
    """config.toml could not be read, or holds an unknown key or a bad value."""


def config_path(environ: dict[str, str] | None = None) -> str:
    """Where the config lives: $NVIDIA_CTK_CONFIG_FILE_PATH, else ${XDG_CONFIG_HOME:-/etc}/…"""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_CONFIG_PATH)
    if explicit:
        return explicit
    base = env.get("XDG_CONFIG_HOME") or "/etc"
    return os.path.join(base, "nvidia-container-runtime", "config.toml")


def _set_dotted(cfg: dict, key: str, value: object) -> None:
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def get(cfg: dict, key: str) -> object:
    """The value of a dotted key (``get(cfg, "nvidia-container-runtime.mode")``)."""
    node: object = cfg
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            raise KeyError(key)
        node = node[p]
    return node


def default_config() -> dict:
    """Every key with its default (host-dependent defaults included)."""
    cfg: dict = {}
    overrides = host_defaults()
    for key, (_type, default) in SCHEMA.items():
        value = overrides.get(key, default)
        _set_dotted(cfg, key, list(value) if isinstance(value, list) else value)
    return cfg


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")  # a command-line value that was not UTF-8 holds lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _check_type(key: str, value: object, source: str) -> object:
    kind = SCHEMA[key][0]
    if (isinstance(value, str) and not _is_text(value)) or (
        isinstance(value, list) and not all(_is_text(v) for v in value if isinstance(v, str))
    ):
        raise ConfigError(f"{source}: {key}: not valid UTF-8: {value!r}")
    if kind in (BOOL, FEATURE):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected a boolean, got {value!r}")
    elif kind == STR:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, got {value!r}")
    elif kind == LIST:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {key}: expected a list of strings, got {value!r}")
        value = list(value)
    return value


def _flatten(data: dict, source: str, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if key in SCHEMA:
            out[key] = _check_type(key, value, source)
        elif isinstance(value, dict) and key in _TABLE_PREFIXES:
            out.update(_flatten(value, source, key + "."))
        elif key in _TABLE_PREFIXES:
            raise ConfigError(f"{source}: {key}: expected a table ([{key}]), got {value!r}")
        else:
            raise ConfigError(f"{source}: unknown key {key!r}")
    return out


def validate(cfg: dict, source: str = "<config>") -> None:
    """Cross-key rules: ldconfig must be host-relative (@…) unless allowed; enumerations."""
    ldconfig = cfg["nvidia-container-cli"]["ldconfig"]
    if not ldconfig.startswith("@") and not cfg["features"]["allow-ldconfig-from-container"]:
        raise ConfigError(
            f"{source}: nvidia-container-cli.ldconfig: {ldconfig!r} must start with '@' (a host path) "
            "unless features.allow-ldconfig-from-container = true"
        )
    rt = cfg["nvidia-container-runtime"]
    if rt["mode"] not in VALID_MODES:
        raise ConfigError(
            f"{source}: nvidia-container-runtime.mode: {rt['mode']!r} is not one of {', '.join(VALID_MODES)}"
        )
    if rt["sandbox"] not in VALID_SANDBOXES:
        raise ConfigError(
            f"{source}: nvidia-container-runtime.sandbox: {rt['sandbox']!r} is not one of '', 'gvisor'"
        )
    # an empty prefix matches every annotation: each annotation value would be read as a device name
    if any(not p for p in rt["modes"]["cdi"]["annotation-prefixes"]):
        raise ConfigError(
            f"{source}: nvidia-container-runtime.modes.cdi.annotation-prefixes: "
            "an empty prefix would match every annotation"
        )
    compat = rt["modes"]["legacy"]["cuda-compat-mode"]
    if compat not in VALID_CUDA_COMPAT_MODES:
        raise ConfigError(
            f"{source}: nvidia-container-runtime.modes.legacy.cuda-compat-mode: {compat!r} is not one of "
            f"{', '.join(VALID_CUDA_COMPAT_MODES)}"
        )


def read_config(path: str | None = None, *, required: bool = False) -> tuple[dict, set[str]]:
    """Load ``path`` (default: the lookup order) over the defaults.

    Returns the config and the set of dotted keys the file sets explicitly (rendering never
    comments those out). A missing file means defaults unless ``required``.
    """
    source = path or config_path()
    from gpuctk.fileio import read_limited

    try:
        with open(source, "rb") as f:
            raw = read_limited(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{source}: config file not found") from None
        return default_config(), set()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror}") from None
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: nested too deeply") from None
    flat = _flatten(data, source)
    cfg = default_config()
    for key, value in flat.items():
        _set_dotted(cfg, key, value)
    validate(cfg, source)
    return cfg, set(flat)


def load_config(path: str | None = None) -> dict:
    """The effective config: ``path`` or the lookup order, absent file = defaults.

    The parsed result is cached (``marshal``, keyed by the file's stat and the host defaults)
    so a container start does not pay for importing tomllib; any change to the file misses.
    """
    source = path or config_path()
    try:
        st = os.stat(source)
    except FileNotFoundError:
        return default_config()
    except OSError:
        return read_config(source)[0]
    key = _cache_key(source, st)
    cached = _cache_get(source, key)
    if cached is not None:
        return cached
    cfg = read_config(source)[0]
    _cache_put(source, key, cfg)
    return cfg


# ------------------------------------------------------------------ parsed-config cache
# (gpuctk._cachefile: root-only, trusted marshal files keyed by the file's stat)
ENV_CACHE_DIR = "GPUCTK_CONFIG_CACHE_DIR"
_CACHE_PREFIX = "config-"
_CACHE_MAX_ENTRIES = 16


def _cache_key(source: str, st: os.stat_result) -> tuple:
    from gpuctk import __version__

    return (
        __version__,
        os.path.abspath(source),
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        tuple(sorted(host_defaults().items())),
    )


def _cache_get(source: str, key: tuple) -> dict | None:
    from gpuctk import _cachefile as cachefile

    path = cachefile.path_for(_CACHE_PREFIX, os.path.abspath(source))
    data = cachefile.read(path) if path else None
    if isinstance(data, tuple) and len(data) == 2 and data[0] == key and isinstance(data[1], dict):
        return data[1]
    return None


def _cache_put(source: str, key: tuple, cfg: dict) -> None:
    from gpuctk import _cachefile as cachefile

    path = cachefile.path_for(_CACHE_PREFIX, os.path.abspath(source))
    if path:
        cachefile.write(path, (key, cfg), prefix=_CACHE_PREFIX, keep=_CACHE_MAX_ENTRIES)


def clone(cfg: dict) -> dict:
    import copy

    return copy.deepcopy(cfg)
