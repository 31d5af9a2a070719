"""Qualified CDI device names: ``vendor/class=name`` (grammar of the reference parser).

vendor and class: a letter, then letters, digits, ``_ - .``, ending in a letter or digit.
name: a letter or digit, then letters, digits, ``_ - . :``, ending in a letter or digit.
ASCII only, no length limits, no DNS rules (the reference code enforces none).
"""

from __future__ import annotations

from gpuctk.cdi.errors import CDIError

_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ALNUM = _LETTERS | frozenset("0123456789")
_VENDOR_MID = _ALNUM | frozenset("_-.")
_NAME_MID = _VENDOR_MID | frozenset(":")


def parse_device(device: str) -> tuple[str, str, str]:
    """Split without validating: ``("", "", device)`` when it is not qualified."""
    if not device or device[0] == "/":
        return "", "", device
    qualifier, sep, name = device.partition("=")
    if not sep or not qualifier or not name:
        return "", "", device
    vendor, sep, cls = qualifier.partition("/")
    if not sep or not vendor or not cls:
        return "", "", device
    return vendor, cls, name


def parse_qualifier(kind: str) -> tuple[str, str]:
    """Split ``vendor/class`` at the first ``/``; ``("", "")`` when either half is missing."""
    vendor, sep, cls = kind.partition("/")
    if not sep or not vendor or not cls:
        return "", ""
    return vendor, cls


def vendor_error(vendor: str) -> str | None:
    return _vendor_or_class_error(vendor, "vendor")


def class_error(cls: str) -> str | None:
    return _vendor_or_class_error(cls, "class")


def _vendor_or_class_error(value: str, what: str) -> str | None:
    if not value:
        return f"invalid {what}. empty name"
    if value[0] not in _LETTERS:
        return f'invalid {what}. "{value}", should start with letter'
    for c in value[1:-1]:
        if c not in _VENDOR_MID:
            return f"invalid {what}. invalid character {_quote_char(c)} in name {_go_quote(value)}"
    if value[-1] not in _ALNUM:
        return f'invalid {what}. "{value}", should end with a letter or digit'
    return None


def device_name_error(name: str) -> str | None:
    """The reference's message for an invalid device name, or None."""
    if not name:
        return "invalid (empty) device name"
    if name[0] not in _ALNUM:
        return f'invalid class "{name}", should start with a letter or digit'  # sic: reference says "class"
    if len(name) == 1:
        return None
    for c in name[1:-1]:
        if c not in _NAME_MID:
            return f"invalid character {_quote_char(c)} in device name {_go_quote(name)}"
    if name[-1] not in _ALNUM:
        return f'invalid name "{name}", should end with a letter or digit'
    return None


def qualified_name_error(device: str) -> str | None:
    vendor, cls, name = parse_device(device)
    if not vendor:
        return f'unqualified device "{device}", missing vendor'
    err = vendor_error(vendor) or class_error(cls) or device_name_error(name)
    if err:
        return f'invalid device "{device}": {err}'
    return None


def parse_qualified_name(device: str) -> tuple[str, str, str]:
    """``(vendor, class, name)`` of a valid qualified name; CDIError otherwise."""
    err = qualified_name_error(device)
    if err:
        raise CDIError(err)
    return parse_device(device)


def is_qualified_name(device: str) -> bool:
    return qualified_name_error(device) is None


def qualified_name(vendor: str, cls: str, name: str) -> str:
    """Plain concatenation, like the reference (no validation)."""
    return vendor + "/" + cls + "=" + name


def _quote_char(c: str) -> str:
    return "'" + c + "'" if c.isprintable() else repr(c)


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
