"""A small ELF reader: just what the dynamic loader looks at when it links a program.

``read_elf(path)`` returns an :class:`ElfInfo` with the ELF class, byte order and machine (a library is
only a candidate for a needer of the same class and machine), ``PT_INTERP``, and from the dynamic segment
``DT_NEEDED``, ``DT_SONAME``, ``DT_RPATH``, ``DT_RUNPATH``, ``DT_FLAGS_1``, the version needs
(``DT_VERNEED``: for each needed file, the version names such as ``GLIBCXX_3.4.30``) and the version
definitions (``DT_VERDEF``: the versions a library provides). Anything that is not a well-formed ELF
file - truncated, corrupt, a linker script named ``libc.so``, unreadable - gives ``None``; this module
never raises out of ``read_elf`` / ``parse_elf_bytes``.

Only the pieces that are needed are read, with ``os.pread`` in 4 KiB blocks (:mod:`launcher.ld.elfsource`):
the ELF header, the program headers, the dynamic segment and the few string-table pieces that the dynamic
entries point at. Section headers are never read (a stripped library has none worth trusting); addresses
are mapped to file offsets through the ``PT_LOAD`` segments, as the loader does.

Why an own reader rather than pyelftools or ``ld.so --list``: the loader itself is exact but costs a
process per object, executes the object's loader and only answers "what is missing today"; pyelftools is a
third-party import of tens of milliseconds on the launch path. This reader is stdlib code that reads a few
kilobytes per object and is checked in the tests against gcc-built objects and the real loader; every
offset and count coming from the file is bounds-checked.
"""

from __future__ import annotations

import os
import struct
from stat import S_ISREG

from launcher.ld.elfinfo import ElfInfo
from launcher.ld.elfsource import BLOCK, Bad, BytesSource, FileSource, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["ELFCLASS32", "ELFCLASS64", "ET_DYN", "ET_EXEC", "ElfInfo", "parse_elf_bytes", "read_elf"]

ELFCLASS32 = 1
ELFCLASS64 = 2
ET_EXEC = 2
ET_DYN = 3

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_STRSZ = 0, 1, 5, 10
_DT_SONAME, _DT_RPATH, _DT_RUNPATH = 14, 15, 29
_DT_FLAGS_1 = 0x6FFFFFFB
_DT_VERDEF, _DT_VERDEFNUM, _DT_VERNEED, _DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
#: The dynamic tags of which the first occurrence is kept (everything but DT_NEEDED).
_SINGLE_TAGS = frozenset(
    {_DT_STRTAB, _DT_STRSZ, _DT_SONAME, _DT_RPATH, _DT_RUNPATH, _DT_FLAGS_1}
    | {_DT_VERDEF, _DT_VERDEFNUM, _DT_VERNEED, _DT_VERNEEDNUM}
)
_VER_FLG_BASE, _VER_FLG_WEAK = 0x1, 0x2

_MAX_PHNUM = 1024
_MAX_DYN = 16384
_MAX_STR = 65536
_MAX_VER = 4096
_MAX_INTERP = 4096
_ERRORS = (Bad, struct.error, ValueError, OverflowError, UnicodeError, MemoryError)


class _Header:
    """The fields of the ELF header this reader uses."""

    __slots__ = ("big", "elf_class", "elf_type", "endian", "machine", "phentsize", "phnum", "phoff")

    def __init__(self, src: Source) -> None:
        ident = src.read(0, 16)
        if ident[:4] != b"\x7fELF":
            raise Bad("not ELF")
        self.elf_class, data = ident[4], ident[5]
        if self.elf_class not in (ELFCLASS32, ELFCLASS64) or data not in (1, 2):
            raise Bad("bad ident")
        self.big = data == 2
        self.endian = ">" if self.big else "<"
        if self.is64:
            fields = struct.unpack(self.endian + "HHIQQQIHHH", src.read(16, 42))
        else:
            fields = struct.unpack(self.endian + "HHIIIIIHHH", src.read(16, 30))
        self.elf_type, self.machine, _v, _e, self.phoff, _sh, _f, _eh, self.phentsize, self.phnum = fields
        if self.phnum > _MAX_PHNUM or (self.phnum and self.phentsize < (56 if self.is64 else 32)):
            raise Bad("bad program headers")

    @property
    def is64(self) -> bool:
        return self.elf_class == ELFCLASS64


class _Segments:
    """What the program headers say: the ``PT_LOAD`` mappings, ``PT_DYNAMIC`` and ``PT_INTERP``."""

    __slots__ = ("dynamic", "interp", "loads")

    def __init__(self, src: Source, hdr: _Header) -> None:
        self.loads: list[tuple[int, int, int]] = []  # (vaddr, filesz, offset)
        self.dynamic: Optional[tuple[int, int]] = None  # (offset, size)
        self.interp: Optional[str] = None
        if not hdr.phnum:
            return
        fmt = hdr.endian + ("IIQQQQQQ" if hdr.is64 else "IIIIIIII")
        size = struct.calcsize(fmt)
        table = src.read(hdr.phoff, hdr.phentsize * hdr.phnum)
        interp_loc: Optional[tuple[int, int]] = None
        for i in range(hdr.phnum):
            raw = table[i * hdr.phentsize : i * hdr.phentsize + size]
            if hdr.is64:
                p_type, _flags, p_offset, p_vaddr, _pa, p_filesz, _memsz, _al = struct.unpack(fmt, raw)
            else:
                p_type, p_offset, p_vaddr, _pa, p_filesz, _memsz, _flags, _al = struct.unpack(fmt, raw)
            if p_type == _PT_LOAD:
                self.loads.append((p_vaddr, p_filesz, p_offset))
            elif p_type == _PT_DYNAMIC and self.dynamic is None:
                self.dynamic = (p_offset, p_filesz)
            elif p_type == _PT_INTERP and interp_loc is None:
                interp_loc = (p_offset, p_filesz)
        if interp_loc is not None:
            offset, length = interp_loc
            if length > _MAX_INTERP:
                raise Bad("bad interp")
            self.interp = src.read(offset, length).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def file_offset(self, addr: int) -> int:
        """The file offset of a virtual address, through the ``PT_LOAD`` segments."""
        for vaddr, filesz, offset in self.loads:
            if vaddr <= addr < vaddr + filesz:
                return addr - vaddr + offset
        raise Bad("address outside the loaded segments")


def _dynamic_entries(src: Source, hdr: _Header, dynamic: tuple[int, int]) -> tuple[list[int], dict[int, int]]:
    """(string offsets of the ``DT_NEEDED`` entries, the first value of each other tag of interest)."""
    ent = 16 if hdr.is64 else 8
    fmt = hdr.endian + ("qQ" if hdr.is64 else "iI")
    offset, size = dynamic
    count = min(size // ent, _MAX_DYN)
    raw = src.read(offset, count * ent)
    needed: list[int] = []
    single: dict[int, int] = {}
    for i in range(count):
        tag, val = struct.unpack_from(fmt, raw, i * ent)
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed.append(val)
        elif tag in _SINGLE_TAGS:
            single.setdefault(tag, val)
    return needed, single


class _Strings:
    """The dynamic string table, read piece by piece."""

    __slots__ = ("_offset", "_size", "_src")

    def __init__(self, src: Source, offset: int, size: int) -> None:
        self._src, self._offset, self._size = src, offset, size

    def get(self, index: int) -> str:
        """The NUL-terminated string at ``index``."""
        if index < 0 or index >= self._size:
            raise Bad("string index out of range")
        out = b""
        pos = self._offset + index
        while len(out) < _MAX_STR:
            chunk_len = min(BLOCK - (pos % BLOCK), self._src.size - pos)
            if chunk_len <= 0:
                raise Bad("string runs past the end of the file")
            chunk = self._src.read(pos, chunk_len)
            nul = chunk.find(b"\0")
            if nul >= 0:
                return (out + chunk[:nul]).decode("utf-8", "surrogateescape")
            out += chunk
            pos += chunk_len
        raise Bad("unterminated string")


def _version_needs(
    src: Source, endian: str, strings: _Strings, pos: int, count: int
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``DT_VERNEED``: for each needed file, the non-weak version names required from it."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for _ in range(min(count, _MAX_VER)):
        _version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack(endian + "HHIII", src.read(pos, 16))
        names: list[str] = []
        apos = pos + vn_aux
        for _j in range(min(vn_cnt, _MAX_VER)):
            _hash, flags, _other, name, nxt = struct.unpack(endian + "IHHII", src.read(apos, 16))
            if not flags & _VER_FLG_WEAK:
                names.append(strings.get(name))
            if nxt == 0:
                break
            apos += nxt
        out.append((strings.get(vn_file), tuple(names)))
        if vn_next == 0:
            break
        pos += vn_next
    return tuple(out)


def _version_defs(src: Source, endian: str, strings: _Strings, pos: int, count: int) -> tuple[str, ...]:
    """``DT_VERDEF``: the version names the object defines, without its base entry."""
    out: list[str] = []
    for _ in range(min(count, _MAX_VER)):
        _version, vd_flags, _ndx, vd_cnt, _hash, vd_aux, vd_next = struct.unpack(
            endian + "HHHHIII", src.read(pos, 20)
        )
        if vd_cnt and not vd_flags & _VER_FLG_BASE:
            (name,) = struct.unpack(endian + "I", src.read(pos + vd_aux, 4))
            out.append(strings.get(name))
        if vd_next == 0:
            break
        pos += vd_next
    return tuple(out)


def _parse(src: Source) -> ElfInfo:
    """The whole object: header, program headers, then the dynamic entries and their strings."""
    hdr = _Header(src)
    segments = _Segments(src, hdr)
    info = ElfInfo(hdr.elf_class, hdr.big, hdr.machine, hdr.elf_type, segments.interp)
    if segments.dynamic is None:
        return info
    needed, single = _dynamic_entries(src, hdr, segments.dynamic)
    if _DT_STRTAB not in single:
        if needed or _DT_SONAME in single:
            raise Bad("no string table")
        return info
    strings = _Strings(src, segments.file_offset(single[_DT_STRTAB]), single.get(_DT_STRSZ, _MAX_STR))

    def opt(tag: int) -> Optional[str]:
        return strings.get(single[tag]) if tag in single else None

    needs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if _DT_VERNEED in single:
        pos = segments.file_offset(single[_DT_VERNEED])
        needs = _version_needs(src, hdr.endian, strings, pos, single.get(_DT_VERNEEDNUM, _MAX_VER))
    defs: Optional[tuple[str, ...]] = None
    if _DT_VERDEF in single:
        pos = segments.file_offset(single[_DT_VERDEF])
        defs = _version_defs(src, hdr.endian, strings, pos, single.get(_DT_VERDEFNUM, _MAX_VER))
    return ElfInfo(
        hdr.elf_class,
        hdr.big,
        hdr.machine,
        hdr.elf_type,
        segments.interp,
        opt(_DT_SONAME),
        tuple(strings.get(o) for o in needed),
        opt(_DT_RPATH),
        opt(_DT_RUNPATH),
        single.get(_DT_FLAGS_1, 0),
        needs,
        defs,
    )


def parse_elf_bytes(data: bytes) -> Optional[ElfInfo]:
    """Parse an object held in memory; ``None`` when it is not a well-formed ELF object."""
    try:
        return _parse(BytesSource(data))
    except _ERRORS:
        return None


def read_elf(path: str) -> Optional[ElfInfo]:
    """Read ``path``; ``None`` for anything that is not a readable, well-formed ELF object."""
    try:
        # O_NONBLOCK: a FIFO named like a library must not hang the launch.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode):
            return None
        return _parse(FileSource(fd, st.st_size))
    except (OSError, *_ERRORS):
        return None
    finally:
        os.close(fd)
