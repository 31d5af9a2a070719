"""Scalar semantics of the reference decoder (go-yaml v2 + sigs.k8s.io/yaml), stdlib only.

* ``resolve_plain``: what an unquoted YAML scalar means to go-yaml v2 (YAML 1.1 booleans
  such as ``y``/``on``, ``0666`` octal, ``0x``/``0o``/``0b`` prefixes, ``_`` separators,
  no sexagesimal ``1:30``; timestamps stay strings).
* ``to_go_string``: how sigs.k8s.io/yaml turns a number or boolean into a string when the
  Go field is a string (floats use float32 precision, Go's ``%g`` style).
"""

from __future__ import annotations

import math

NULL = object()  # marker for a plain scalar meaning null (``~``, ``null``, empty)

_TRUE = frozenset(["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"])
_FALSE = frozenset(["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"])
_NULLS = frozenset(["", "~", "null", "Null", "NULL"])
_INF = frozenset([".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"])
_NINF = frozenset(["-.inf", "-.Inf", "-.INF"])
_NAN = frozenset([".nan", ".NaN", ".NAN"])
_HINT_NUMBER = frozenset("+-0123456789")
_INT_PATTERN = r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|0[oO]([0-7]+)|0[bB]([01]+)|0([0-7]*)|([1-9][0-9]*))\Z"
_YAML_FLOAT_PATTERN = r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z"
_DOT_FLOAT_PATTERN = r"\.[0-9]+([eE][-+]?[0-9]+)?\Z"
_compiled: list = []  # [int, yaml float, dot float] patterns, compiled on first use


def _patterns() -> list:
    """YAML scalar patterns, compiled lazily: only YAML input needs them, and importing ``re``
    on the runtime's create path (JSON specs) would cost milliseconds per container."""
    if not _compiled:
        import re

        _compiled.extend(re.compile(p) for p in (_INT_PATTERN, _YAML_FLOAT_PATTERN, _DOT_FLOAT_PATTERN))
    return _compiled


_I64_MIN, _I64_MAX, _U64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1


def resolve_plain(s: str) -> object:
    """The value of a plain (unquoted) scalar: str, int, float, bool or NULL."""
    if not s:
        return NULL
    c = s[0]
    if s in _NULLS:
        return NULL
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    if c == "." or c in "+-":
        if s in _INF:
            return math.inf
        if s in _NINF:
            return -math.inf
        if s in _NAN:
            return math.nan
    if c == ".":
        if _patterns()[2].match(s):
            f = float(s)
            if not math.isinf(f):
                return f
        return s
    if c not in _HINT_NUMBER:
        return s
    plain = s.replace("_", "")
    m = _patterns()[0].match(plain)
    v: int | None
    if m:
        sign, hx, octo, binary, zero_oct, dec = m.groups()
        if hx is not None:
            v = int(hx, 16)
        elif octo is not None:
            v = int(octo, 8)
        elif binary is not None:
            v = int(binary, 2)
        elif zero_oct is not None:
            v = int(zero_oct, 8) if zero_oct else 0
        elif len(dec) <= 20:
            v = int(dec)
        else:
            # over 20 digits is past uint64, so go-yaml reads a string (and int() of over 4300
            # decimal digits raises ValueError); the other bases have no digit limit in CPython
            v = None
        if v is not None:
            if sign == "-":
                v = -v
            if _I64_MIN <= v <= _I64_MAX or (not sign and v <= _U64_MAX):
                return v
    if _patterns()[1].match(plain):
        f = float(plain)
        if not math.isinf(f):
            return f
    return s


def plain_is_string(s: str) -> bool:
    """True when go-yaml v2 reads the unquoted text ``s`` back as the same string."""
    if s == "<<":
        return False
    v = resolve_plain(s)
    return isinstance(v, str)


def go_float32(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 32)."""
    import struct  # lazy: only numbers given for string fields get here

    if f != f:
        return "NaN"
    try:
        f32 = struct.unpack("f", struct.pack("f", f))[0]
    except OverflowError:
        f32 = math.inf if f > 0 else -math.inf
    if math.isinf(f32):
        return "+Inf" if f32 > 0 else "-Inf"
    neg = f32 < 0 or (f32 == 0 and math.copysign(1.0, f32) < 0)
    a = abs(f32)
    if a == 0:
        return "-0" if neg else "0"
    for p in range(1, 18):
        s = f"{a:.{p - 1}e}"
        if struct.unpack("f", struct.pack("f", float(s)))[0] == a:
            break
    mant, exp_s = s.split("e")
    digits = mant.replace(".", "").rstrip("0") or "0"
    dp = int(exp_s) + 1
    exp = dp - 1
    nd = len(digits)
    if exp < -4 or exp >= 6:
        out = digits[0] + ("." + digits[1:] if nd > 1 else "")
        e = abs(exp)
        out += "e" + ("-" if exp < 0 else "+") + (f"{e:02d}")
    else:
        ip = (digits[:dp] + "0" * max(dp - nd, 0)) if dp > 0 else "0"
        decimals = max(nd - dp, 0)
        frac = "".join(digits[dp + i] if 0 <= dp + i < nd else "0" for i in range(decimals))
        out = ip + ("." + frac if decimals else "")
    return ("-" if neg else "") + out


def to_go_string(v: object) -> str | None:
    """A scalar as sigs.k8s.io/yaml writes it into a Go string field; None for non-scalars."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float32(v)
    return None


def type_name(v: object) -> str:
    if v is None or v is NULL:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "number"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "mapping"
    return type(v).__name__
