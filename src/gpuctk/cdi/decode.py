"""Strict decoding of a generic spec document (dicts/lists/scalars from JSON or YAML)
into the canonical spec dict, with the reference decoder's semantics.

The canonical dict is what ``specs-go`` would hold after ``UnmarshalStrict``, written
back with its JSON tags: camelCase keys in struct order; fields tagged ``omitempty`` are
left out when empty; pointer fields (``uid``, ``gid``, ``fileMode``, ``timeout``,
``intelRdt``) are present whenever they were given, even as 0 or ``{}``;
``intelRdt.schemata`` keeps ``[]`` apart from absent/null because the minimum version
depends on it.

Reference decoder behaviour reproduced here: unknown keys are errors; keys match
case-insensitively (an exact match wins); numbers and booleans given where a string is
expected become strings (float32 ``%g`` formatting for floats); ``null`` gives the zero
value; an integral float (``1.0``) is accepted for an integer; integer ranges are
checked (int64, uint32). Every problem names its field path.
"""

from __future__ import annotations

from gpuctk.cdi.scalars import NULL, to_go_string, type_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Path: TypeAlias = "tuple[Path, str | int] | None"  # (parent, key), formatted only for problems

# field modes
KEEP = 0  # always present (no omitempty in specs-go)
OMIT = 1  # omitempty: left out when empty/zero
PTR = 2  # pointer: present when given (not null)
NONNULL = 3  # slice whose nil-vs-empty matters: present when not null

# field kinds
STR, INT, BOOL, STRLIST, U32LIST, STRUCTLIST, STRUCT, MAP = range(8)

_I64 = (-(1 << 63), (1 << 63) - 1)
_U32 = (0, (1 << 32) - 1)


SCHEMA: dict[str, tuple[tuple[str, int, Any, int], ...]] = {
    "Spec": (
        ("cdiVersion", STR, None, KEEP),
        ("kind", STR, None, KEEP),
        ("annotations", MAP, None, OMIT),
        ("devices", STRUCTLIST, "Device", KEEP),
        ("containerEdits", STRUCT, "ContainerEdits", OMIT),
    ),
    "Device": (
        ("name", STR, None, KEEP),
        ("annotations", MAP, None, OMIT),
        ("containerEdits", STRUCT, "ContainerEdits", KEEP),
    ),
    "ContainerEdits": (
        ("env", STRLIST, None, OMIT),
        ("deviceNodes", STRUCTLIST, "DeviceNode", OMIT),
        ("netDevices", STRUCTLIST, "LinuxNetDevice", OMIT),
        ("hooks", STRUCTLIST, "Hook", OMIT),
        ("mounts", STRUCTLIST, "Mount", OMIT),
        ("intelRdt", STRUCT, "IntelRdt", PTR),
        ("additionalGids", U32LIST, None, OMIT),
    ),
    "DeviceNode": (
        ("path", STR, None, KEEP),
        ("hostPath", STR, None, OMIT),
        ("type", STR, None, OMIT),
        ("major", INT, _I64, OMIT),
        ("minor", INT, _I64, OMIT),
        ("fileMode", INT, _U32, PTR),
        ("permissions", STR, None, OMIT),
        ("uid", INT, _U32, PTR),
        ("gid", INT, _U32, PTR),
    ),
    "Mount": (
        ("hostPath", STR, None, KEEP),
        ("containerPath", STR, None, KEEP),
        ("options", STRLIST, None, OMIT),
        ("type", STR, None, OMIT),
    ),
    "Hook": (
        ("hookName", STR, None, KEEP),
        ("path", STR, None, KEEP),
        ("args", STRLIST, None, OMIT),
        ("env", STRLIST, None, OMIT),
        ("timeout", INT, _I64, PTR),
    ),
    "IntelRdt": (
        ("closID", STR, None, OMIT),
        ("l3CacheSchema", STR, None, OMIT),
        ("memBwSchema", STR, None, OMIT),
        ("schemata", STRLIST, None, NONNULL),
        ("enableMonitoring", BOOL, None, OMIT),
    ),
    "LinuxNetDevice": (
        ("hostInterfaceName", STR, None, KEEP),
        ("name", STR, None, KEEP),
    ),
}

_BY_NAME = {t: {f[0]: f for f in fields} for t, fields in SCHEMA.items()}
_BY_LOWER = {t: {f[0].lower(): f for f in fields} for t, fields in SCHEMA.items()}
_ZERO = {STR: "", INT: 0, BOOL: False}


# Field paths are built lazily, as (parent, key) pairs, and only formatted for a problem:
# decoding is on the runtime shim's path and most specs have no problem at all.


def format_path(path: Path) -> str:
    parts: list[str | int] = []
    while path is not None:
        path, key = path
        parts.append(key)
    out = ""
    for key in reversed(parts):
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else key
    return out or "(document)"


def _is_null(v: object) -> bool:
    return v is None or v is NULL


def decode_struct(obj: object, type_name_: str, path: str, problems: list[str]) -> dict[str, Any] | None:
    """Decode a mapping into the canonical dict of ``type_name_``; None if ``obj`` is null.

    ``path`` is the field path of ``obj`` used in problem messages ("" for the document).
    """
    return _struct(obj, type_name_, (None, path) if path else None, problems)


def _struct(obj: object, type_name_: str, path: Path, problems: list[str]) -> dict[str, Any] | None:
    if obj is None or obj is NULL:
        return None
    if type(obj) is not dict:
        problems.append(f"{format_path(path)}: expected a mapping, got {type_name(obj)}")
        return None
    by_name = _BY_NAME[type_name_]
    values: dict[str, object] = {}
    given_as: dict[str, str] | None = None
    for key, value in obj.items():
        f = by_name.get(key)
        if f is None:
            f = _BY_LOWER[type_name_].get(key.lower()) if isinstance(key, str) and key.isascii() else None
            if f is None:
                problems.append(f'{format_path(path)}: unknown field "{key}"')
                continue
        name = f[0]
        if name in values:
            if given_as is None:
                given_as = {}
            first = given_as.get(name, name)
            problems.append(f'{format_path((path, name))}: duplicate field (given as "{first}" and "{key}")')
            continue
        if name != key:
            if given_as is None:
                given_as = {}
            given_as[name] = key
        values[name] = value
    out: dict[str, Any] = {}
    for name, kind, detail, mode in SCHEMA[type_name_]:
        v = values.get(name)
        if v is None or v is NULL:
            if mode == KEEP:
                out[name] = _keep_zero(kind)
            continue
        if kind == STR and type(v) is str:
            if v or mode != OMIT:
                out[name] = v
            continue
        if kind == INT and type(v) is int and detail[0] <= v <= detail[1]:
            if v or mode != OMIT:
                out[name] = v
            continue
        v = _decode_value(v, kind, detail, (path, name), problems)
        if v is None:
            if mode == KEEP:
                out[name] = _keep_zero(kind)
            continue
        if mode == OMIT and not v:
            continue
        out[name] = v
    return out


def _keep_zero(kind: int) -> Any:
    if kind in _ZERO:
        return _ZERO[kind]
    if kind == STRUCT:
        return {}
    return []


def _decode_value(v: object, kind: int, detail: Any, path: Path, problems: list[str]) -> Any:
    if kind == STR:
        s = to_go_string(v)
        if s is None:
            problems.append(f"{format_path(path)}: expected a string, got {type_name(v)}")
        return s
    if kind == INT:
        return _decode_int(v, detail, path, problems)
    if kind == BOOL:
        if not isinstance(v, bool):
            problems.append(f"{format_path(path)}: expected a boolean, got {_describe(v)}")
            return None
        return v
    if kind == STRUCT:
        return _struct(v, detail, path, problems)
    if kind == MAP:
        return _decode_map(v, path, problems)
    # lists
    if type(v) is not list:
        problems.append(f"{format_path(path)}: expected a list, got {type_name(v)}")
        return None
    if kind == STRLIST:
        if all(type(item) is str for item in v):
            return list(v)
        out: list[Any] = []
        for i, item in enumerate(v):
            if _is_null(item):
                out.append("")
                continue
            s = to_go_string(item)
            if s is None:
                problems.append(f"{format_path((path, i))}: expected a string, got {type_name(item)}")
            else:
                out.append(s)
        return out
    out = []
    for i, item in enumerate(v):
        if kind == U32LIST:
            n = 0 if _is_null(item) else _decode_int(item, _U32, (path, i), problems)
            if n is not None:
                out.append(n)
        elif _is_null(item):
            problems.append(f"{format_path((path, i))}: null entry")
        else:
            d = _struct(item, detail, (path, i), problems)
            if d is not None:
                out.append(d)
    return out


def _describe(v: object) -> str:
    if isinstance(v, str):
        return f'string "{v}"' if len(v) <= 40 else "string"
    return type_name(v)


def _decode_int(v: object, rng: tuple[int, int], path: Path, problems: list[str]) -> int | None:
    if _is_null(v):
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        problems.append(f"{format_path(path)}: expected an integer, got {_describe(v)}")
        return None
    if isinstance(v, float):
        # sigs.k8s.io/yaml re-encodes floats as JSON numbers: 1.0 becomes 1, 1.5 stays 1.5
        if not v.is_integer() or abs(v) >= 1e21:
            problems.append(f"{format_path(path)}: expected an integer, got {v!r}")
            return None
        v = int(v)
    lo, hi = rng
    if not lo <= v <= hi:
        problems.append(f"{format_path(path)}: {v} out of range [{lo}, {hi}]")
        return None
    return v


def _decode_map(v: object, path: Path, problems: list[str]) -> dict[str, str] | None:
    if not isinstance(v, dict):
        problems.append(f"{format_path(path)}: expected a mapping, got {type_name(v)}")
        return None
    out: dict[str, str] = {}
    for key, item in v.items():
        k = to_go_string(key)
        if k is None:
            problems.append(f"{format_path(path)}: key of type {type_name(key)}")
            continue
        if _is_null(item):
            out[k] = ""
            continue
        s = to_go_string(item)
        if s is None:
            problems.append(f"{format_path((path, k))}: expected a string, got {type_name(item)}")
            continue
        out[k] = s
    return out


def decode_spec(doc: object, problems: list[str]) -> dict[str, Any] | None:
    """The canonical spec dict of a parsed document; problems are appended to ``problems``."""
    if _is_null(doc):
        problems.append("(document): no Spec data")
        return None
    return _struct(doc, "Spec", None, problems)


def decode_edits(edits: object, path: str, problems: list[str]) -> dict[str, Any]:
    return decode_struct(edits, "ContainerEdits", path, problems) or {}
