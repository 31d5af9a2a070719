"""Serialise CDI spec dicts as YAML (default, starts with ``---``) or JSON."""

from __future__ import annotations

import json
import re
from typing import Any

# plain (unquoted) only when no YAML 1.1/1.2 reader can take it for anything but a string
_PLAIN = re.compile(r"(?:[A-Za-z/_]|-[A-Za-z-])[A-Za-z0-9/_.\-=+@]*|\d+\.\d+\.\d+")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML11_WORDS:
        return text
    return _quote(text)


def _quote(text: str) -> str:
    """A YAML double-quoted scalar: printable ASCII as is, everything else escaped
    (\\U for astral characters, which JSON would split into surrogates)."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif o > 0xFFFF:
            out.append(f"\\U{o:08x}")
        else:
            out.append(f"\\u{o:04x}")
    out.append('"')
    return "".join(out)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            key = _scalar(k)
            if len(key) > 1000:  # YAML caps implicit keys at 1024 characters: use an explicit key
                out.append(f"{pad}? {key}")
                key = ""
            if isinstance(v, dict) and v:
                out.append(f"{pad}{key}:")
                _emit(v, indent + 2, out)
            elif isinstance(v, list) and v:
                out.append(f"{pad}{key}:")
                _emit(v, indent, out)  # block sequences sit at the key's indentation
            else:
                out.append(f"{pad}{key}: {_flow_empty(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_flow_empty(item)}")


def _flow_empty(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def render(spec: dict[str, Any], fmt: str = "yaml") -> str:
    """JSON, or block-style YAML starting with ``---`` (own emitter: plain scalars where
    unambiguous, JSON-quoted strings otherwise; no PyYAML import on the generate path)."""
    if fmt == "json":
        # raw UTF-8, not \u escapes: Go consumers (go-yaml v2) refuse surrogate-pair escapes;
        # the characters its reader refuses raw (DEL, C1, U+FFFE/U+FFFF) stay escaped
        from gpuctk.cdi.model import GO_YAML_RAW_REFUSED

        text = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
        for ch in GO_YAML_RAW_REFUSED.intersection(text) if not text.isascii() or "\x7f" in text else ():
            text = text.replace(ch, f"\\u{ord(ch):04x}")
        return text
    out: list[str] = ["---"]
    _emit(spec, 0, out)
    return "\n".join(out) + "\n"


def format_for_path(path: str, explicit: str | None) -> tuple[str, str, str | None]:
    """(path, format, warning): the extension decides the format unless ``--format`` was
    given; a missing or other extension gets .yaml/.json appended. An existing directory
    is refused: upstream would write ``<dir>.yaml`` beside it, which nobody means."""
    import os

    from gpuctk.errors import GpuctkError

    if path.endswith("/") or os.path.isdir(path):
        raise GpuctkError(
            f"{path}: --output is a directory; give a file name such as {os.path.join(path, 'nvidia.yaml')}"
        )
    lower = path.lower()
    ext_fmt = "json" if lower.endswith(".json") else "yaml" if lower.endswith((".yaml", ".yml")) else None
    warning = None
    fmt = explicit or ext_fmt or "yaml"
    if ext_fmt is None:
        path = path + "." + fmt
    elif explicit and explicit != ext_fmt:
        warning = f"--format {explicit} does not match the extension of {path}"
    return path, fmt, warning


def write_spec_file(spec: dict[str, Any], path: str, fmt: str) -> None:
    """Atomic write, mode 0644 (the CDI library's writer when present)."""
    import os

    from gpuctk.errors import GpuctkError
    from gpuctk.fileio import atomic_write

    text = render(spec, fmt)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        atomic_write(path, text, mode=0o644)
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot write spec: {exc.strerror or exc}") from None
