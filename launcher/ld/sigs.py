"""Signatures: how a directory, a file or the answer's outside files are recognised as unchanged.

They are *fine* on the machine that made them (mtime and ctime in nanoseconds, inode) and *coarse* in an
analysis pre-computed into an image (mtimes in whole seconds, a file's size): unpacking an image's layers
gives every file a new inode and ctime and keeps mtimes to the second only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    Sig = list[int]

_NS = 1_000_000_000


def dir_sig(st: os.stat_result, coarse: bool = False) -> Sig:
    """A walked directory's signature: (mtime, inode, ctime), or its mtime in seconds when ``coarse``."""
    return [st.st_mtime_ns // _NS] if coarse else [st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def file_sig(st: os.stat_result) -> Sig:
    """A walked file's signature: (size, mtime, ctime)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def coarse_dir_sig(sig: Sig) -> Sig:
    """The coarse form of a fine directory signature."""
    return [sig[0] // _NS]


def coarse_file_sig(sig: Sig) -> Sig:
    """The coarse form of a fine file signature."""
    return [sig[0], sig[1] // _NS]


def path_sig(path: str, coarse: bool) -> Optional[list[int]]:
    """The signature of a file or directory outside the env that an answer depends on: size, mtime and
    inode, or (coarse) the mtime in seconds and, for a regular file, the size; ``None`` when missing."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not coarse:
        return [st.st_size, st.st_mtime_ns, st.st_ino]
    return [st.st_mtime_ns // _NS, st.st_size] if os.path.isfile(path) else [st.st_mtime_ns // _NS]


def unchanged(prefix: str, sigs: Mapping[str, object], coarse: bool = False) -> bool:
    """Do all directories of an earlier walk still have their (fine or ``coarse``) signatures? (One
    ``stat`` each.)"""
    if not sigs:
        return False
    stat = os.stat
    for rel, sig in sigs.items():
        try:
            st = stat(prefix + "/" + rel if rel else prefix)
        except (OSError, ValueError, TypeError):
            return False
        if sig != dir_sig(st, coarse):
            return False
    return True
