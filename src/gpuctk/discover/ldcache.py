"""Parse glibc's ``/etc/ld.so.cache`` (pure Python).

Two layouts exist: the old ``ld.so-1.7.0`` table and the new ``glibc-ld.so.cache1.1``
one, which modern glibc writes alone or (older glibc) right after an old-format table.
We return the 64-bit entries (x86-64, aarch64, ppc64le flags) as (soname, path) pairs in
cache order. Malformed input raises ValueError only; callers treat that as "no cache".
"""

from __future__ import annotations

import struct

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"
_FLAG_TYPE_ELF_LIBC6 = 0x0003
# required-architecture bits of 64-bit entries: x86-64, ppc64 (incl. le), aarch64
_LIB64_FLAGS = {0x0300, 0x0500, 0x0A00}


def _cstr(data: bytes, off: int) -> str:
    if off < 0 or off >= len(data):
        raise ValueError("ld.so.cache: string offset out of range")
    end = data.find(b"\0", off)
    if end < 0:
        raise ValueError("ld.so.cache: unterminated string")
    return data[off:end].decode("utf-8", "replace")


def _is64(flags: int) -> bool:
    return (flags & 0xFF) == _FLAG_TYPE_ELF_LIBC6 and (flags & 0xFF00) in _LIB64_FLAGS


def _parse_new(data: bytes, start: int) -> list[tuple[str, str, int]]:
    if len(data) < start + 48:
        raise ValueError("ld.so.cache: truncated header")
    nlibs, _len_strings = struct.unpack_from("<II", data, start + 20)
    if nlibs > (len(data) - start) // 24:
        raise ValueError("ld.so.cache: entry count exceeds file size")
    out = []
    for i in range(nlibs):
        flags, key, value, _osv, _hwcap = struct.unpack_from("<iIIIQ", data, start + 48 + i * 24)
        # string offsets in the new format count from the start of the new header
        out.append((_cstr(data, start + key), _cstr(data, start + value), flags))
    return out


def _parse_old(data: bytes) -> tuple[list[tuple[str, str, int]], int]:
    if len(data) < 16:
        raise ValueError("ld.so.cache: truncated header")
    (nlibs,) = struct.unpack_from("<I", data, 12)
    if nlibs > (len(data) - 16) // 12:
        raise ValueError("ld.so.cache: entry count exceeds file size")
    table_end = 16 + nlibs * 12
    new_start = (table_end + 7) // 8 * 8
    if data[new_start : new_start + len(NEW_MAGIC)] == NEW_MAGIC:
        return [], new_start
    out = []
    for i in range(nlibs):
        flags, key, value = struct.unpack_from("<iII", data, 16 + i * 12)
        out.append((_cstr(data, table_end + key), _cstr(data, table_end + value), flags))
    return out, -1


def parse_ldcache(data: bytes, *, only_64bit: bool = True) -> list[tuple[str, str]]:
    """(soname, path) entries of an ld.so.cache image."""
    if data.startswith(NEW_MAGIC):
        entries = _parse_new(data, 0)
    elif data.startswith(OLD_MAGIC):
        entries, new_start = _parse_old(data)
        if new_start >= 0:
            entries = _parse_new(data, new_start)
    else:
        raise ValueError("ld.so.cache: unknown format")
    return [(k, v) for k, v, f in entries if not only_64bit or _is64(f)]


def load_ldcache(path: str) -> list[tuple[str, str]]:
    """Entries of the cache file at ``path``; empty when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read(256 * 1024 * 1024)
        return parse_ldcache(data)
    except (OSError, ValueError, struct.error):
        return []
