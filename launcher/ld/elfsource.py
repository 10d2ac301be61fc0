"""Random access to an ELF object's bytes, for :mod:`launcher.ld.elf`: from memory, or from a file read
with ``os.pread`` in aligned 4 KiB blocks, each block read at most once."""

from __future__ import annotations

import os

BLOCK = 4096


class Bad(Exception):
    """The file is not a well-formed ELF object (never leaves :mod:`launcher.ld.elf`)."""


class Source:
    """Random access to the object's bytes; ``read`` returns exactly ``n`` bytes or raises :class:`Bad`."""

    size = 0

    def read(self, off: int, n: int) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError


class BytesSource(Source):
    """An object held in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read(self, off: int, n: int) -> bytes:
        if off < 0 or n < 0 or off + n > len(self._data):
            raise Bad("out of range")
        return self._data[off : off + n]


class FileSource(Source):
    """An open file, read with ``pread`` in aligned blocks."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self.size = size
        self._blocks: dict[int, bytes] = {}

    def _block(self, index: int) -> bytes:
        blk = self._blocks.get(index)
        if blk is None:
            blk = os.pread(self._fd, BLOCK, index * BLOCK)
            self._blocks[index] = blk
        return blk

    def read(self, off: int, n: int) -> bytes:
        if off < 0 or n < 0 or off + n > self.size:
            raise Bad("out of range")
        if n == 0:
            return b""
        first, last = off // BLOCK, (off + n - 1) // BLOCK
        if first == last:
            start = off - first * BLOCK
            out = self._block(first)[start : start + n]
        elif n > 4 * BLOCK:
            out = os.pread(self._fd, n, off)
        else:
            joined = b"".join(self._block(i) for i in range(first, last + 1))
            start = off - first * BLOCK
            out = joined[start : start + n]
        if len(out) != n:
            raise Bad("short read")
        return out
