"""Read ``DT_SONAME`` from an ELF shared object (pure Python, no shelling out).

Handles 32/64-bit and both byte orders. Uses program headers (PT_DYNAMIC + PT_LOAD to
map the string table address) and falls back to section headers. Any malformed input
gives None, never an exception: a bad library is simply "no SONAME".
"""

from __future__ import annotations

import mmap
import struct

_DT_NULL, _DT_STRTAB, _DT_SONAME = 0, 5, 14


class _Elf:
    def __init__(self, data: bytes | mmap.mmap) -> None:
        if len(data) < 52 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
            raise ValueError("not an ELF file")
        self.data = data
        self.is64 = data[4] == 2
        self.end = "<" if data[5] == 1 else ">"
        if self.is64:
            (self.phoff, self.shoff) = struct.unpack_from(self.end + "QQ", data, 32)
            (self.phentsize, self.phnum, self.shentsize, self.shnum) = struct.unpack_from(
                self.end + "HHHH", data, 54
            )
        else:
            (self.phoff, self.shoff) = struct.unpack_from(self.end + "II", data, 28)
            (self.phentsize, self.phnum, self.shentsize, self.shnum) = struct.unpack_from(
                self.end + "HHHH", data, 42
            )

    def phdrs(self) -> list[tuple[int, int, int, int]]:
        """(type, offset, vaddr, filesz) per program header."""
        out = []
        for i in range(min(self.phnum, 4096)):
            base = self.phoff + i * self.phentsize
            if self.is64:
                p_type, _f, off, vaddr, _pa, filesz = struct.unpack_from(self.end + "IIQQQQ", self.data, base)
            else:
                p_type, off, vaddr, _pa, filesz = struct.unpack_from(self.end + "IIIII", self.data, base)
            out.append((p_type, off, vaddr, filesz))
        return out

    def dyn_entries(self, off: int, size: int) -> list[tuple[int, int]]:
        fmt, step = (self.end + "qQ", 16) if self.is64 else (self.end + "iI", 8)
        out = []
        for pos in range(off, min(off + size, len(self.data)) - step + 1, step):
            tag, val = struct.unpack_from(fmt, self.data, pos)
            if tag == _DT_NULL:
                break
            out.append((tag, val))
        return out

    def cstr(self, off: int) -> str | None:
        if off < 0 or off >= len(self.data):
            return None
        end = self.data.find(b"\0", off)
        if end < 0:
            return None
        return self.data[off:end].decode("utf-8", "replace")


def _soname_from_phdrs(elf: _Elf) -> str | None:
    phdrs = elf.phdrs()
    dyn = [p for p in phdrs if p[0] == 2]
    if not dyn:
        return None
    entries = elf.dyn_entries(dyn[0][1], dyn[0][3])
    tags = dict(entries)
    if _DT_SONAME not in tags or _DT_STRTAB not in tags:
        return None
    strtab_vaddr = tags[_DT_STRTAB]
    for p_type, off, vaddr, filesz in phdrs:
        if p_type == 1 and vaddr <= strtab_vaddr < vaddr + filesz:
            return elf.cstr(off + (strtab_vaddr - vaddr) + tags[_DT_SONAME])
    return None


def _soname_from_sections(elf: _Elf) -> str | None:
    sections = []
    for i in range(min(elf.shnum, 65536)):
        base = elf.shoff + i * elf.shentsize
        if elf.is64:
            _n, sh_type, _fl, _addr, off, size, link = struct.unpack_from(elf.end + "IIQQQQI", elf.data, base)
        else:
            _n, sh_type, _fl, _addr, off, size, link = struct.unpack_from(elf.end + "IIIIIII", elf.data, base)
        sections.append((sh_type, off, size, link))
    for sh_type, off, size, link in sections:
        if sh_type == 6 and link < len(sections):  # SHT_DYNAMIC, sh_link = its string table
            soname = dict(elf.dyn_entries(off, size)).get(_DT_SONAME)
            if soname is not None:
                return elf.cstr(sections[link][1] + soname)
    return None


def soname_from_bytes(data: bytes | mmap.mmap) -> str | None:
    try:
        elf = _Elf(data)
        return _soname_from_phdrs(elf) or _soname_from_sections(elf)
    except (ValueError, struct.error, IndexError, OverflowError):
        return None


def read_soname(path: str) -> str | None:
    """The DT_SONAME of the ELF file at ``path`` (symlinks followed), or None.

    The file is mapped, not read: real driver libraries are tens of MB and only a few
    pages (headers, dynamic section, string table) are ever touched.
    """
    try:
        with open(path, "rb") as f:
            try:
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # empty file
                return None
            with mapped:
                return soname_from_bytes(mapped)
    except OSError:
        return None
