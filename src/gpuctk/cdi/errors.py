"""Errors raised by the CDI library (stdlib only)."""

from __future__ import annotations

from gpuctk.errors import GpuctkError

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(text: str) -> str:
    """``text`` safe for a one-line message: control characters, line separators and lone
    surrogates escaped as Go's ``%q`` writes them (a name holding a newline prints as
    ``"\\nacme.io"``). Printable text, the common case, is returned as is."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if ch.isprintable() and not 0xD800 <= o <= 0xDFFF:
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return "".join(out)


class CDIError(GpuctkError):
    """Invalid CDI spec, unreadable spec file, or a failed edit.

    ``problems`` holds every ``field: message`` found when the error comes from
    validation (the message itself shows the first one).
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(escape(message))
        self.problems: list[str] = [escape(p) for p in problems or ()]


class UnresolvableDevicesError(CDIError):
    """Some requested device names are not defined by any loaded spec."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("unresolvable CDI devices " + ", ".join(names))
        self.names = list(names)


def strip_source(message: str, path: str) -> str:
    """'failed to parse CDI Spec "p": X' -> 'X', for output that already names the file."""
    for prefix in ("failed to read CDI Spec", "failed to parse CDI Spec"):
        head = f'{prefix} "{path}": '
        if message.startswith(head):
            return message[len(head) :]
    return message
