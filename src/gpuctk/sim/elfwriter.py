"""Write tiny but valid ELF64 shared objects (pure Python).

A simulated driver needs files that glibc's ``ldconfig`` accepts and that carry the
right ``DT_SONAME``: one PT_LOAD covering the file, one PT_DYNAMIC, a string table, a
symbol table with the null symbol and a SysV hash table, plus section headers (``.dynstr``,
``.dynsym``, ``.hash``, ``.note``, ``.dynamic``, ``.shstrtab``) so that tools reading the
SONAME through sections (Go's ``debug/elf`` ``DynString``, as upstream's generator uses;
``readelf -d``, ``objdump -p``) see a real library. No code: nothing ever maps them for
execution.
"""

from __future__ import annotations

import struct

EM_X86_64 = 62
EM_AARCH64 = 183
MACHINES = {"x86_64": EM_X86_64, "aarch64": EM_AARCH64}

_DT_NULL, _DT_NEEDED, _DT_HASH, _DT_STRTAB, _DT_SYMTAB, _DT_STRSZ, _DT_SYMENT, _DT_SONAME = (
    0,
    1,
    4,
    5,
    6,
    10,
    11,
    14,
)


def _align(n: int, a: int = 8) -> int:
    return (n + a - 1) // a * a


def shared_object(
    soname: str | None,
    machine: str = "x86_64",
    needed: tuple[str, ...] = ("libc.so.6",),
    note: tuple[str, bytes] | None = None,
) -> bytes:
    """Bytes of a minimal ELF64 little-endian ``ET_DYN`` with the given SONAME.

    ``note``: optional (owner, descriptor) for one PT_NOTE (type 1).
    """
    e_machine = MACHINES[machine]
    strtab = b"\0"
    offsets: dict[str, int] = {}
    for s in ([soname] if soname else []) + list(needed):
        offsets[s] = len(strtab)
        strtab += s.encode() + b"\0"
    nphdr = 3 if note else 2
    off = 64 + 56 * nphdr
    strtab_off = off
    off = _align(off + len(strtab))
    symtab_off = off
    symtab = b"\0" * 24
    off += len(symtab)
    hash_off = off
    hashtab = struct.pack("<IIII", 1, 1, 0, 0)
    off = _align(off + len(hashtab))
    note_bytes = b""
    note_off = off
    if note:
        owner = note[0].encode() + b"\0"
        note_bytes = struct.pack("<III", len(owner), len(note[1]), 1) + owner.ljust(
            _align(len(owner), 4), b"\0"
        )
        note_bytes += note[1].ljust(_align(len(note[1]), 4), b"\0")
        off = _align(off + len(note_bytes))
    dyn_off = off
    entries = [(_DT_NEEDED, offsets[n]) for n in needed]
    entries += [
        (_DT_HASH, hash_off),
        (_DT_STRTAB, strtab_off),
        (_DT_SYMTAB, symtab_off),
        (_DT_STRSZ, len(strtab)),
        (_DT_SYMENT, 24),
    ]
    if soname:
        entries.append((_DT_SONAME, offsets[soname]))
    entries.append((_DT_NULL, 0))
    dynamic = b"".join(struct.pack("<qQ", t, v) for t, v in entries)
    size = dyn_off + len(dynamic)

    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    header = ident + struct.pack("<HHIQQQIHHHHHH", 3, e_machine, 1, 0, 64, 0, 0, 64, 56, nphdr, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 1, 4 | 2, 0, 0, 0, size, size, 0x1000)  # PT_LOAD R+W
    phdrs += struct.pack("<IIQQQQQQ", 2, 4 | 2, dyn_off, dyn_off, dyn_off, len(dynamic), len(dynamic), 8)
    if note:
        phdrs += struct.pack(
            "<IIQQQQQQ", 4, 4, note_off, note_off, note_off, len(note_bytes), len(note_bytes), 4
        )
    # section headers after the loaded part: NULL, .dynstr, .dynsym, .hash, [.note], .dynamic, .shstrtab
    names = [".dynstr", ".dynsym", ".hash"] + ([".note"] if note else []) + [".dynamic", ".shstrtab"]
    shstrtab = b"\0"
    name_off = {}
    for n in names:
        name_off[n] = len(shstrtab)
        shstrtab += n.encode() + b"\0"
    shstrtab_off = size
    shoff = _align(shstrtab_off + len(shstrtab))
    i_dynstr, i_dynsym = 1, 2
    alloc, write = 2, 1
    sections = [(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    sections.append((name_off[".dynstr"], 3, alloc, strtab_off, strtab_off, len(strtab), 0, 0, 1, 0))
    sections.append((name_off[".dynsym"], 11, alloc, symtab_off, symtab_off, len(symtab), i_dynstr, 1, 8, 24))
    sections.append((name_off[".hash"], 5, alloc, hash_off, hash_off, len(hashtab), i_dynsym, 0, 8, 4))
    if note:
        sections.append((name_off[".note"], 7, alloc, note_off, note_off, len(note_bytes), 0, 0, 4, 0))
    sections.append(
        (name_off[".dynamic"], 6, alloc | write, dyn_off, dyn_off, len(dynamic), i_dynstr, 0, 8, 16)
    )
    sections.append((name_off[".shstrtab"], 3, 0, 0, shstrtab_off, len(shstrtab), 0, 0, 1, 0))
    shdrs = b"".join(struct.pack("<IIQQQQIIQQ", *sec) for sec in sections)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        3,
        e_machine,
        1,
        0,
        64,
        shoff,
        0,
        64,
        56,
        nphdr,
        64,
        len(sections),
        len(sections) - 1,
    )

    body = bytearray(shoff + len(shdrs))
    body[0 : len(header)] = header
    body[64 : 64 + len(phdrs)] = phdrs
    body[strtab_off : strtab_off + len(strtab)] = strtab
    body[symtab_off : symtab_off + len(symtab)] = symtab
    body[hash_off : hash_off + len(hashtab)] = hashtab
    if note:
        body[note_off : note_off + len(note_bytes)] = note_bytes
    body[dyn_off : dyn_off + len(dynamic)] = dynamic
    body[shstrtab_off : shstrtab_off + len(shstrtab)] = shstrtab
    body[shoff : shoff + len(shdrs)] = shdrs
    return bytes(body)
