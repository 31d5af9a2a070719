"""Write the toolkit's config.toml: ``--set`` values and upstream's file layout.

The layout is the one ``nvidia-ctk config default`` writes (NVIDIA/nvidia-container-toolkit
`pkg/config/toml.go`): sorted keys, no indentation, defaults commented out.
"""

from __future__ import annotations

from gpuctk.config.load import ConfigError, _check_type, _set_dotted, get
from gpuctk.config.schema import (
    BOOL,
    COMMENTED_DEFAULTS,
    FEATURE,
    LIST,
    OMITTED_UNLESS_SET,
    SCHEMA,
    is_suse,
)

TYPE_CHECKING = False  # no `typing` at run time: the shim imports this package
if TYPE_CHECKING:
    from typing import Any

    from gpuctk.config.types import ConfigDict

# ------------------------------------------------------------------ --set values (CLI)
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_value(key: str, raw: str | None, list_separator: str = ",") -> object:
    """Turn a ``--set KEY[=VALUE]`` value into the key's type (bool keys alone mean true;
    ``nil`` unsets a feature flag)."""
    if key not in SCHEMA:
        raise ConfigError(f"unknown config key {key!r}")
    kind = SCHEMA[key][0]
    if kind in (BOOL, FEATURE):
        if raw is None:
            return True
        if kind == FEATURE and raw == "nil":
            return None
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f"{key}: expected a boolean, got {raw!r}")
    if raw is None:
        raise ConfigError(f"{key}: a value is required (--set {key}=VALUE)")
    if kind == LIST:
        return [v for v in raw.split(list_separator) if v] if raw else []
    return raw


def set_value(cfg: ConfigDict | dict[str, Any], key: str, value: object) -> None:
    if key not in SCHEMA:
        raise ConfigError(f"unknown config key {key!r}")
    if value is not None or SCHEMA[key][0] != FEATURE:
        value = _check_type(key, value, "--set")
    _set_dotted(cfg, key, value)


# ------------------------------------------------------------------ rendering (upstream `api/config/v1/toml.go`)
def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot render {v!r}")


def _should_comment(key: str, display: object, value: object, suse: bool) -> bool:
    if key == "nvidia-container-cli.user" and value == display and suse:
        return False
    if key == "nvidia-container-runtime.debug" and value == "/dev/null":
        return True
    return value is None or value == "" or (type(value) is type(display) and value == display)


def render(cfg: ConfigDict | dict[str, Any], explicit: set[str] | frozenset[str] = frozenset()) -> str:
    """config.toml text in upstream's layout: sorted keys, no indentation, defaults commented.

    ``explicit``: dotted keys set by the user (from the file or --set); they are never
    commented out and always written.
    """
    suse = is_suse()
    lines_by_table: dict[str, list[tuple[str, str]]] = {}
    for key in SCHEMA:
        try:
            value = get(cfg, key)
        except KeyError:
            if key not in COMMENTED_DEFAULTS:
                continue
            value = None  # absent: upstream still writes the commented display default
        table, _, name = key.rpartition(".")
        if key not in explicit:
            if SCHEMA[key][0] == FEATURE and value is None:
                continue
            if key in OMITTED_UNLESS_SET and value in ("", [], False, None):
                continue
            if key in COMMENTED_DEFAULTS and _should_comment(key, COMMENTED_DEFAULTS[key], value, suse):
                lines_by_table.setdefault(table, []).append(
                    (name, f"#{name} = {_toml_value(COMMENTED_DEFAULTS[key])}")
                )
                continue
        if value is None:
            continue
        lines_by_table.setdefault(table, []).append((name, f"{name} = {_toml_value(value)}"))
    # every ancestor of a table with content is rendered (an empty header, as go-toml does)
    tables = set(lines_by_table)
    for t in list(tables):
        parts = t.split(".")
        for i in range(1, len(parts)):
            tables.add(".".join(parts[:i]))
    tables.discard("")
    out: list[str] = [line for _, line in sorted(lines_by_table.get("", []))]

    def emit(prefix: str) -> None:
        depth = prefix.count(".") + 1 if prefix else 0
        children = sorted(
            t for t in tables if t.count(".") == depth and (not prefix or t.startswith(prefix + "."))
        )
        for child in children:
            if out:
                out.append("")
            out.append(f"[{child}]")
            out.extend(line for _, line in sorted(lines_by_table.get(child, [])))
            emit(child)

    emit("")
    return "\n".join(out) + "\n"
