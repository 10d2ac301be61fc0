"""Walking the env: its directories, the files the loader could load (``*.so``, ``*.so.*``) and the
programs in its ``bin/`` directories (the env's own and those inside packages, such as
``site-packages/torch/bin``), each with a signature, reusing an earlier walk where it is valid.

A directory whose signature (mtime, inode, ctime) is unchanged keeps its listing: installers (conda, pip)
create, rename or delete files, which changes the directory, so checking a walk costs one ``stat`` per
directory. A subtree without any such file is kept as one *pruned* record for its top directory: a later
walk re-lists it only when that directory's own signature changed (installers replace package
directories, which changes the parent), so checking does not stat the thousands of pure-Python
directories of a large env. The candidate files of a walked directory are statted every time, so a
library rewritten in place in an unchanged directory is noticed too. The top-level ``bin/`` is listed but
not descended.

A walk can be checked against a *coarse* one (:mod:`launcher.ld.sigs`), pre-computed into an image; it
records fine signatures.
"""

from __future__ import annotations

import os
from stat import S_ISREG

from launcher.ld.sigs import dir_sig, file_sig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from launcher.ld.sigs import Sig

# Top-level env directories that never hold loadable libraries (or hold other envs: base's envs/, pkgs/).
_SKIP_TOP = frozenset(
    {"sbin", "conda-meta", "include", "share", "man", "pkgs", "envs", "ssl", "etc", "var", "doc"}
    | {"docs", "conda-bld", "mkspecs", "compiler_compat", "shell", "condabin"}
)
_SKIP_ANY = frozenset({"__pycache__", ".git", ".hg", ".svn"})
_SKIP_SUFFIXES = (".dist-info", ".egg-info")
_KEEP_EMPTY = ("site-packages", "dist-packages")
_MAX_DEPTH = 40


def is_candidate(name: str) -> bool:
    """Whether the loader could load a file of this name when asked for it (a shared object's name)."""
    return name.endswith(".so") or ".so." in name


class DirRec:
    """One walked directory: its signature, subdirectories, candidate files, the in-env targets of the
    candidates that are symlinks (``""`` for a target outside the env), programs (in a ``bin``
    directory: executable regular files), and whether it stands for a pruned subtree."""

    __slots__ = ("libs", "links", "progs", "pruned", "sig", "subdirs")

    def __init__(
        self,
        sig: Sig,
        subdirs: list[str],
        libs: list[str],
        links: dict[str, str],
        progs: list[str],
        pruned: bool = False,
    ) -> None:
        self.sig, self.subdirs, self.libs, self.links, self.progs = sig, subdirs, libs, links, progs
        self.pruned = pruned

    def to_list(self) -> list[object]:
        return [self.sig, self.subdirs, self.libs, self.links, self.progs, self.pruned]

    @classmethod
    def from_list(cls, data: object) -> Optional[DirRec]:
        """The record, or ``None`` when ``data`` is not what :meth:`to_list` makes."""
        if not isinstance(data, list) or len(data) != 6:
            return None
        sig, subdirs, libs, links, progs, pruned = data
        if not (
            _ints(sig) and _names(subdirs) and _names(libs) and _names(progs) and isinstance(pruned, bool)
        ):
            return None
        if not isinstance(links, dict) or not all(isinstance(v, str) for v in links.values()):
            return None
        return cls(sig, subdirs, libs, links, progs, pruned)


def _ints(value: object) -> bool:
    return isinstance(value, list) and all(type(i) is int for i in value)


def _names(value: object) -> bool:
    """A list of plain file names (a stored walk must not lead outside the env)."""
    return isinstance(value, list) and all(
        isinstance(i, str) and i not in ("", ".", "..") and "/" not in i for i in value
    )


class Walk:
    """The env's directories (``dirs``: relative path -> :class:`DirRec`) and candidate files and programs
    (``files``: relative path -> signature), reusing ``old`` (an earlier walk's records) where valid.
    ``changed`` says whether any directory was listed again or the set of directories differs from
    ``old``; ``coarse`` says that ``old`` has coarse signatures."""

    def __init__(
        self, prefix: str, old: Optional[Mapping[str, DirRec]] = None, *, coarse: bool = False
    ) -> None:
        self.prefix = prefix
        self.dirs: dict[str, DirRec] = {}
        self.files: dict[str, Sig] = {}
        self.changed = False
        self._old: Mapping[str, DirRec] = old or {}
        self._coarse = coarse
        self._visit("", prefix, 0)
        self.changed = self.changed or self.dirs.keys() != self._old.keys()

    def _visit(self, rel: str, path: str, depth: int) -> bool:
        """Walk one directory (and below); whether the subtree holds a candidate file or a program."""
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return False
        sig = dir_sig(st)
        prev = self._old.get(rel)
        same = prev is not None and prev.sig == (dir_sig(st, True) if self._coarse else sig)
        if prev is not None and same and prev.pruned:
            self.dirs[rel] = DirRec(sig, [], [], {}, [], True)
            return False
        if prev is not None and same:
            rec = DirRec(sig, prev.subdirs, prev.libs, prev.links, prev.progs)
        else:
            self.changed = True
            rec = _list_dir(path, rel)
            rec.sig = sig
        base = rel + "/" if rel else ""
        has = self._stat_files(path, base, rec)
        if depth < _MAX_DEPTH:
            for name in rec.subdirs:
                if self._visit(base + name, path + "/" + name, depth + 1):
                    has = True
        if not has and depth > 2 and not rel.endswith(_KEEP_EMPTY):
            for name in rec.subdirs:
                self.dirs.pop(base + name, None)
            rec = DirRec(sig, [], [], {}, [], True)
        self.dirs[rel] = rec
        return has

    def _stat_files(self, path: str, base: str, rec: DirRec) -> bool:
        """Record the signatures of the directory's candidate files and programs; drop those that are not
        regular files (dangling links, loops, no permission) or, for programs, not executable. Whether any
        is left."""
        libs: list[str] = []
        for name in rec.libs:
            st = _stat(path + "/" + name)
            if st is not None and S_ISREG(st.st_mode):
                self.files[base + name] = file_sig(st)
                libs.append(name)
        progs: list[str] = []
        for name in rec.progs:
            st = _stat(path + "/" + name)
            if st is not None and S_ISREG(st.st_mode) and st.st_mode & 0o111:
                self.files[base + name] = file_sig(st)
                progs.append(name)
        rec.libs, rec.progs = libs, progs
        return bool(libs or progs)

    def doc_dirs(self) -> dict[str, object]:
        """The directories in the form a stored document holds them."""
        return {rel: rec.to_list() for rel, rec in self.dirs.items()}


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _list_dir(path: str, rel: str) -> DirRec:
    """List one directory: subdirectories to walk, candidate files (with in-env symlink targets) and, in a
    directory named ``bin``, the other files as possible programs (checked when they are statted)."""
    subdirs: list[str] = []
    libs: list[str] = []
    links: dict[str, str] = {}
    progs: list[str] = []
    in_bin = rel.rsplit("/", 1)[-1] == "bin"
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not _skip_dir(name, rel):
                            subdirs.append(name)
                    elif is_candidate(name):
                        libs.append(name)
                        if entry.is_symlink():
                            links[name] = _link_target(path, name, rel)
                    elif in_bin:
                        progs.append(name)
                except OSError:
                    continue
    except (OSError, ValueError):
        pass
    subdirs.sort()
    libs.sort()
    progs.sort()
    return DirRec([], subdirs, libs, links, progs)


def _skip_dir(name: str, rel: str) -> bool:
    """Whether the subdirectory ``name`` of the directory ``rel`` is not walked."""
    if name in _SKIP_ANY or name.endswith(_SKIP_SUFFIXES):
        return True
    return (not rel and name in _SKIP_TOP) or rel == "bin"


def _link_target(path: str, name: str, rel: str) -> str:
    """The target of the symlink ``name``, relative to the env, when it is a relative link that stays
    inside the env; ``""`` otherwise (then the link counts as a file of its own)."""
    try:
        target = os.readlink(path + "/" + name)
    except (OSError, ValueError):
        return ""
    if target.startswith("/"):
        return ""
    joined = os.path.normpath(os.path.join(rel, target))
    return "" if joined == ".." or joined.startswith("../") else joined
