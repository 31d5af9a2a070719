"""Find, read and validate the toolkit's config.toml (tomllib; on the container path, so stdlib only).

``load_config()`` returns a nested plain dict holding every key of the schema with defaults
filled in, keyed by the TOML names (``cfg["nvidia-container-runtime"]["mode"]``); its shape is
``gpuctk.config.types.ConfigDict`` (for mypy only: nothing here imports ``typing``). The parsed
result is cached (``gpuctk._cachefile``) so a container start does not pay for tomllib.

Unknown keys (typos, keys of older or newer upstream releases) are ignored with a warning, as
upstream's TOML decoding ignores them (NVIDIA/nvidia-container-toolkit `api/config/v1/toml.go`);
only ``gpuctk config --strict`` turns them into an error.
"""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError

# The schema (gpuctk.config.schema) is imported where a file is parsed or defaults are built: a
# create served from the parsed-config cache needs only the host defaults of its key (below).

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up; the shim imports this module
if TYPE_CHECKING:
    from typing import Any

    from gpuctk.config.types import ConfigDict

ENV_CONFIG_PATH = "NVIDIA_CTK_CONFIG_FILE_PATH"
_table_prefixes: frozenset[str] | None = None  # the schema's table names ("nvidia-container-runtime"…)


def is_suse(os_release: str = "/etc/os-release") -> bool:
    try:
        with open(os_release) as f:
            text = f.read()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("ID_LIKE="):
            value = line.split("=", 1)[1].strip().strip('"').lower()
            return "suse" in value.split() or "opensuse" in value.split()
    return False


def host_defaults() -> dict[str, object]:
    """Defaults that depend on the host (upstream computes these the same way); re-exported by
    gpuctk.config.schema, defined here because the cache key of every load needs them."""
    out: dict[str, object] = {}
    if os.path.exists("/sbin/ldconfig.real"):  # Debian/Ubuntu wrap ldconfig in a script
        out["nvidia-container-cli.ldconfig"] = "@/sbin/ldconfig.real"
    if is_suse():
        out["nvidia-container-cli.user"] = "root:video"
    return out


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


def _set_dotted(cfg: Any, key: str, value: object) -> None:
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def get(cfg: Any, key: str) -> object:
    """The value of a dotted key (``get(cfg, "nvidia-container-runtime.mode")``)."""
    node: object = cfg
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            raise KeyError(key)
        node = node[p]
    return node


def default_config() -> dict[str, Any]:
    """Every key with its default (host-dependent defaults included)."""
    from gpuctk.config.schema import SCHEMA

    cfg: dict[str, Any] = {}
    overrides = host_defaults()
    for key, (_type, default) in SCHEMA.items():
        value = overrides.get(key, default)
        _set_dotted(cfg, key, list(value) if isinstance(value, list) else value)
    return cfg


def default_config_typed() -> ConfigDict:
    """``default_config()`` seen through its shape (every SCHEMA key is filled in)."""
    return default_config()  # type: ignore[return-value]


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")  # a command-line value that was not UTF-8 holds lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _check_type(key: str, value: object, source: str) -> object:
    from gpuctk.config.schema import BOOL, FEATURE, LIST, SCHEMA, STR

    kind = SCHEMA[key][0]
    if (isinstance(value, str) and not _is_text(value)) or (
        isinstance(value, list) and not all(_is_text(v) for v in value if isinstance(v, str))
    ):
        raise ConfigError(f"{source}: {key}: not valid UTF-8: {_short(value)}")
    if kind in (BOOL, FEATURE):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected a boolean, got {_short(value)}")
    elif kind == STR:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, got {_short(value)}")
    elif kind == LIST:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {key}: expected a list of strings, got {_short(value)}")
        value = list(value)
    return value


def _flatten(
    data: dict, source: str, unknown: list[str], invalid: dict[str, str] | None, prefix: str = ""
) -> dict[str, object]:
    """Dotted key -> checked value. Unknown keys go to ``unknown`` (upstream ignores them); a
    value of the wrong type raises, or with ``invalid`` given is recorded there and left out."""
    global _table_prefixes
    from gpuctk.config.schema import SCHEMA

    if _table_prefixes is None:
        _table_prefixes = frozenset(k.rsplit(".", i)[0] for k in SCHEMA for i in range(1, k.count(".") + 1))
    tables = _table_prefixes
    out: dict[str, object] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        try:
            if key in SCHEMA:
                out[key] = _check_type(key, value, source)
            elif isinstance(value, dict) and key in tables:
                out.update(_flatten(value, source, unknown, invalid, key + "."))
            elif key in tables:
                raise ConfigError(f"{source}: {key}: expected a table ([{key}]), got {_short(value)}")
            else:
                unknown.append(f"{source}: unknown key {key!r} (ignored)")
        except ConfigError as exc:
            if invalid is None:
                raise
            invalid[key] = str(exc)
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(
    cfg: ConfigDict | dict[str, Any], source: str = "<config>", invalid: dict[str, str] | None = None
) -> None:
    """Cross-key rules: ldconfig must be host-relative (@…) unless allowed; enumerations.

    Raises on the first broken rule; with ``invalid`` given, each broken key is recorded there
    (dotted key -> one-line error) and its default restored instead."""
    from gpuctk.config.schema import VALID_CUDA_COMPAT_MODES, VALID_MODES, VALID_SANDBOXES

    problems: list[tuple[str, str]] = []
    ldconfig = cfg["nvidia-container-cli"]["ldconfig"]
    if not ldconfig.startswith("@") and not cfg["features"]["allow-ldconfig-from-container"]:
        problems.append(
            (
                "nvidia-container-cli.ldconfig",
                f"{source}: nvidia-container-cli.ldconfig: {ldconfig!r} must start with '@' (a host path) "
                "unless features.allow-ldconfig-from-container = true",
            )
        )
    rt = cfg["nvidia-container-runtime"]
    if rt["mode"] not in VALID_MODES:
        problems.append(
            (
                "nvidia-container-runtime.mode",
                f"{source}: nvidia-container-runtime.mode: {rt['mode']!r} is not one of "
                f"{', '.join(VALID_MODES)}",
            )
        )
    if rt["sandbox"] not in VALID_SANDBOXES:
        problems.append(
            (
                "nvidia-container-runtime.sandbox",
                f"{source}: nvidia-container-runtime.sandbox: {rt['sandbox']!r} is not one of '', 'gvisor'",
            )
        )
    # an empty prefix matches every annotation: each annotation value would be read as a device name
    if any(not p for p in rt["modes"]["cdi"]["annotation-prefixes"]):
        problems.append(
            (
                "nvidia-container-runtime.modes.cdi.annotation-prefixes",
                f"{source}: nvidia-container-runtime.modes.cdi.annotation-prefixes: "
                "an empty prefix would match every annotation",
            )
        )
    compat = rt["modes"]["legacy"]["cuda-compat-mode"]
    if compat not in VALID_CUDA_COMPAT_MODES:
        problems.append(
            (
                "nvidia-container-runtime.modes.legacy.cuda-compat-mode",
                f"{source}: nvidia-container-runtime.modes.legacy.cuda-compat-mode: {compat!r} is not one of "
                f"{', '.join(VALID_CUDA_COMPAT_MODES)}",
            )
        )
    if not problems:
        return
    if invalid is None:
        raise ConfigError(problems[0][1])
    defaults = default_config()
    for key, message in problems:
        invalid[key] = message
        _set_dotted(cfg, key, get(defaults, key))


# A real config.toml is a few KiB; far above that is not a config file (and tomllib's time
# grows with the number of table headers).
MAX_CONFIG_BYTES = 1 << 20


def _read_config_bytes(source: str) -> bytes | None:
    """The bytes of config.toml (None: it does not exist) through ``gpuctk.fileio.read_regular``:
    a FIFO, a device (``/dev/zero``) or a directory is refused before it is read, and so is a
    file over MAX_CONFIG_BYTES."""
    from gpuctk.fileio import FileTooLargeError, NotRegularFileError, read_regular

    try:
        return read_regular(source, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return None
    except (IsADirectoryError, NotRegularFileError):
        raise ConfigError(f"{source}: cannot read config file: not a regular file") from None
    except FileTooLargeError as exc:
        raise ConfigError(
            f"{source}: cannot read config file: larger than {exc.limit >> 10} KiB, not a config file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from None


def _parse_file(
    source: str, *, required: bool, unknown: list[str], invalid: dict[str, str] | None
) -> tuple[ConfigDict, set[str]]:
    raw = _read_config_bytes(source)
    if raw is None:
        if required:
            raise ConfigError(f"{source}: config file not found")
        return default_config_typed(), set()
    import tomllib

    from gpuctk.fileio import check_toml_shape

    try:
        text = raw.decode("utf-8")
        # caps the keys, tables and dotted parts before tomllib (quadratic in the parts of one key)
        check_toml_shape(text, source)
        data = tomllib.loads(text)
    except ConfigError:
        raise
    except GpuctkError as exc:  # check_toml_shape's one line, as this module's error type
        raise ConfigError(str(exc)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: invalid TOML: {_one_line(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: nested too deeply") from None
    except ValueError as exc:  # an integer over Python's digit limit
        raise ConfigError(f"{source}: invalid TOML: {_one_line(str(exc))}") from None
    flat = _flatten(data, source, unknown, invalid)
    cfg = default_config_typed()
    for key, value in flat.items():
        _set_dotted(cfg, key, value)
    validate(cfg, source, invalid)
    return cfg, set(flat)


def _one_line(text: str) -> str:
    text = text.splitlines()[0] if text else text
    return text if len(text) <= 200 else text[:197] + "..."


def _report(warnings: list[str] | None, unknown: list[str]) -> None:
    if warnings is not None:
        warnings.extend(unknown)
        return
    import sys

    for line in unknown:
        try:
            sys.stderr.write(f"warning: {line}\n")
        except OSError:
            pass


def read_config(
    path: str | None = None, *, required: bool = False, warnings: list[str] | None = None
) -> tuple[dict[str, Any], set[str]]:
    """Load ``path`` (default: the lookup order) over the defaults.

    Returns the config and the set of dotted keys the file sets explicitly (rendering never
    comments those out). A missing file means defaults unless ``required``. Unknown keys are
    ignored, as upstream ignores them: each is one line appended to ``warnings`` (or written
    to stderr when no list is given). A value of the wrong type is a ``ConfigError``.

    The config is returned as a plain ``dict`` for the callers outside the shim (the legacy
    hook, install) whose signatures take one; it has the shape of ``ConfigDict``.
    """
    source = path or config_path()
    unknown: list[str] = []
    cfg, explicit = _parse_file(source, required=required, unknown=unknown, invalid=None)
    _report(warnings, unknown)
    return dict(cfg), explicit


def load_config(
    path: str | None = None,
    *,
    warnings: list[str] | None = None,
    invalid: dict[str, str] | None = None,
) -> ConfigDict:
    """The effective config for the container path: ``path`` or the lookup order, absent
    file = defaults.

    Unknown keys are warnings (see ``read_config``). With ``invalid`` given, a key whose value
    has the wrong type (or breaks a rule of ``validate``) keeps its default and its one-line
    error is recorded there under the dotted key, so the caller decides whether this
    container needs it; without it, the first such error is raised.

    The parsed result is cached (``marshal``, keyed by the file's stat and the host defaults)
    so a container start does not pay for importing tomllib; any change to the file misses.
    """
    source = path or config_path()
    try:
        st = os.stat(source)
    except FileNotFoundError:
        return default_config_typed()
    except OSError:
        return _load_uncached(source, warnings, invalid)
    key = _cache_key(source, st)
    cached = _cache_get(source, key)
    if cached is None:
        unknown: list[str] = []
        found: dict[str, str] = {}
        cfg, _ = _parse_file(source, required=False, unknown=unknown, invalid=found)
        cached = (cfg, unknown, found)
        _cache_put(source, key, cached)
    cfg, unknown, found = cached
    return _deliver(cfg, unknown, found, warnings, invalid)


def _load_uncached(source: str, warnings: list[str] | None, invalid: dict[str, str] | None) -> ConfigDict:
    unknown: list[str] = []
    found: dict[str, str] = {}
    cfg, _ = _parse_file(source, required=False, unknown=unknown, invalid=found)
    return _deliver(cfg, unknown, found, warnings, invalid)


def _deliver(
    cfg: ConfigDict,
    unknown: list[str],
    found: dict[str, str],
    warnings: list[str] | None,
    invalid: dict[str, str] | None,
) -> ConfigDict:
    if found and invalid is None:
        raise ConfigError(next(iter(found.values())))
    if invalid is not None:
        invalid.update(found)
    _report(warnings, unknown)
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


def _cache_get(source: str, key: tuple) -> tuple[ConfigDict, list[str], dict[str, str]] | None:
    from gpuctk import _cachefile as cachefile

    path = cachefile.path_for(_CACHE_PREFIX, os.path.abspath(source))
    data = cachefile.read(path) if path else None
    if not (isinstance(data, tuple) and len(data) == 2 and data[0] == key):
        return None
    entry = data[1]
    if (
        isinstance(entry, tuple)
        and len(entry) == 3
        and isinstance(entry[0], dict)
        and isinstance(entry[1], list)
        and isinstance(entry[2], dict)
    ):
        return entry
    return None


def _cache_put(source: str, key: tuple, entry: tuple[ConfigDict, list[str], dict[str, str]]) -> None:
    """``entry``: the config, its unknown-key warnings and its invalid keys (a file that is
    not TOML at all raises before this and is never cached)."""
    from gpuctk import _cachefile as cachefile

    path = cachefile.path_for(_CACHE_PREFIX, os.path.abspath(source))
    if path:
        cachefile.write(path, (key, entry), prefix=_CACHE_PREFIX, keep=_CACHE_MAX_ENTRIES)


def clone(cfg: ConfigDict) -> ConfigDict:
    import copy

    return copy.deepcopy(cfg)
