"""Read the ``.note.cuda.fwd_compatibility`` note of a CUDA compat ``libcuda.so`` (pure Python).

The note's owner is ``NVIDIA Corporation`` and its descriptor a JSON object such as
``{"CUDA Version": "12.4", "Driver": [535, 550], "Device": [], "Format": 1}``.
"""

from __future__ import annotations

import struct

from gpuctk._fastjson import loads

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

SECTION = ".note.cuda.fwd_compatibility"
OWNER = b"NVIDIA Corporation"


class ElfError(ValueError):
    pass


def _align4(n: int) -> int:
    return (n + 3) & ~3


def read_section(data: bytes, wanted: str) -> bytes | None:
    """The bytes of the section named ``wanted``, or None. Raises ElfError on a malformed file."""
    if data[:4] != b"\x7fELF" or len(data) < 52:
        raise ElfError("not an ELF file")
    cls, enc = data[4], data[5]
    if cls not in (1, 2) or enc not in (1, 2):
        raise ElfError("unknown ELF class or byte order")
    e = "<" if enc == 1 else ">"
    try:
        if cls == 2:
            (shoff,) = struct.unpack_from(e + "Q", data, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x3A)
            sh_fmt = e + "IIQQQQIIQQ"
        else:
            (shoff,) = struct.unpack_from(e + "I", data, 0x20)
            shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x2E)
            sh_fmt = e + "IIIIIIIIII"
        if shoff == 0 or shnum == 0 or shstrndx >= shnum:
            return None
        headers = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
        str_off, str_size = headers[shstrndx][4], headers[shstrndx][5]
        names = data[str_off : str_off + str_size]
        for h in headers:
            end = names.find(b"\0", h[0])
            if names[h[0] : end if end >= 0 else None].decode(errors="replace") == wanted:
                off, size = h[4], h[5]
                if off + size > len(data):
                    raise ElfError(f"section {wanted} runs past the end of the file")
                return data[off : off + size]
    except struct.error as exc:
        raise ElfError(f"truncated ELF headers ({exc})") from None
    return None


def parse_notes(section: bytes, big_endian: bool = False) -> list[tuple[bytes, int, bytes]]:
    """(owner, type, descriptor) for each note in a note section."""
    e = ">" if big_endian else "<"
    out = []
    pos = 0
    while pos + 12 <= len(section):
        namesz, descsz, ntype = struct.unpack_from(e + "III", section, pos)
        pos += 12
        name = section[pos : pos + namesz].rstrip(b"\0")
        pos += _align4(namesz)
        desc = section[pos : pos + descsz]
        pos += _align4(descsz)
        if len(desc) != descsz:
            raise ElfError("truncated note")
        out.append((name, ntype, desc))
    return out


def cuda_compat_note(data: bytes) -> dict[str, Any] | None:
    """The decoded JSON of the CUDA forward-compatibility note, or None when absent."""
    section = read_section(data, SECTION)
    if section is None:
        return None
    for owner, _ntype, desc in parse_notes(section, big_endian=data[5] == 2):
        if owner == OWNER:
            try:
                doc = loads(desc.rstrip(b"\0").decode())
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting: RecursionError
                raise ElfError(f"{SECTION}: descriptor is not JSON ({exc})") from None
            if not isinstance(doc, dict):
                raise ElfError(f"{SECTION}: descriptor is not a JSON object")
            return doc
    return None
