"""``/etc/ld.so.cache``: which file the loader takes for a soname once the search paths are exhausted.

The cache is parsed here rather than read from ``ldconfig -p``: the format is small and stable
(``glibc-ld.so.cache1.1``, optionally after the old ``ld.so-1.7.0`` table), parsing it takes well under a
millisecond, while ``ldconfig -p`` costs a process, may be missing from a slim image and prints a format
meant for people. An unknown format means "no cache": the default directories still apply.
"""

from __future__ import annotations

import struct

from launcher.ld.sysdirs import LD_SO_CACHE

_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_MAGIC = b"ld.so-1.7.0"
_MAX_ENTRIES = 1_000_000


def _new_format_start(data: bytes) -> int:
    """Where the new-format table starts (after an old-format table, if any), or -1."""
    start = 0
    if data.startswith(_OLD_MAGIC):
        if len(data) < 16:
            return -1
        (nlibs,) = struct.unpack_from("<I", data, 12)
        start = (16 + nlibs * 12 + 7) & ~7
        start = data.find(_NEW_MAGIC, start, start + 64)
        if start < 0:
            return -1
    return start if data[start : start + len(_NEW_MAGIC)] == _NEW_MAGIC else -1


def parse_ld_so_cache(data: bytes) -> dict[str, list[str]]:
    """soname -> paths, in the cache's order; empty for an unknown format."""
    out: dict[str, list[str]] = {}
    start = _new_format_start(data)
    if start < 0:
        return out
    entries = start + 48
    for endian in ("<", ">"):  # the cache is written in the machine's byte order
        try:
            nlibs, len_strings = struct.unpack_from(endian + "II", data, start + 20)
        except struct.error:
            return out
        if entries + nlibs * 24 + len_strings <= len(data) + 8 and nlibs < _MAX_ENTRIES:
            break
    else:
        return out
    for i in range(nlibs):
        try:
            _flags, key, value = struct.unpack_from(endian + "iII", data, entries + i * 24)
        except struct.error:
            break
        k_end = data.find(b"\0", start + key)
        v_end = data.find(b"\0", start + value)
        if k_end < 0 or v_end < 0:
            continue
        name = data[start + key : k_end].decode("utf-8", "surrogateescape")
        out.setdefault(name, []).append(data[start + value : v_end].decode("utf-8", "surrogateescape"))
    return out


def load_ld_so_cache(path: str = LD_SO_CACHE) -> dict[str, list[str]]:
    """The system's cache, parsed; empty when it is missing, unreadable or of an unknown format."""
    try:
        with open(path, "rb") as handle:
            return parse_ld_so_cache(handle.read())
    except (OSError, ValueError, struct.error):
        return {}
