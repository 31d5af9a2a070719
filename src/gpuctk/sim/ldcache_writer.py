"""Fallback ld.so.cache writer (new glibc format) for when `ldconfig -r` cannot run.

`ldconfig -r ROOT` chroots, so it needs root; as an ordinary user the simulator writes
the same new-format table itself from the libraries it created.
"""

from __future__ import annotations

import struct

from gpuctk.discover.ldcache import NEW_MAGIC

FLAGS = {"x86_64": 0x0303, "aarch64": 0x0A03}


def build_ldcache(entries: list[tuple[str, str]], arch: str = "x86_64") -> bytes:
    """A new-format cache image holding (soname, path) ``entries``."""
    flags = FLAGS[arch]
    entries = sorted(set(entries), reverse=True)
    header_len = 48 + 24 * len(entries)
    strings = b""
    offsets: dict[str, int] = {}
    for s in [x for pair in entries for x in pair]:
        if s not in offsets:
            offsets[s] = header_len + len(strings)
            strings += s.encode() + b"\0"
    out = NEW_MAGIC + struct.pack("<IIB3xI3I", len(entries), len(strings), 2, 0, 0, 0, 0)
    for soname, path in entries:
        out += struct.pack("<iIIIQ", flags, offsets[soname], offsets[path], 0, 0)
    return out + strings
