"""Targeted LD_LIBRARY_PATH: prepend exactly the env directories the dynamic loader would otherwise miss.

``analyze(prefix, program, environ)`` reads the ELF dynamic sections (:mod:`launcher.ld.elf`) of the program,
of the env's Python when the program is Python, and of every shared object under the env (``lib/``,
``lib64/``, ``site-packages/**`` with its ``nvidia/*/lib``, ``torch/lib``, ``*.libs`` ...). For each
``DT_NEEDED`` entry it searches as glibc's loader does:

1. ``DT_RPATH`` of the needer and of the objects that loaded it, then of the main program - only when the
   needer has no ``DT_RUNPATH`` (an object with a ``DT_RUNPATH`` has its own ``DT_RPATH`` ignored);
2. the existing ``LD_LIBRARY_PATH`` (from ``environ``);
3. ``DT_RUNPATH`` of the needer only;
4. ``/etc/ld.so.cache`` and 5. the default directories (both skipped for ``DF_1_NODEFLIB`` objects).

``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` are expanded; a candidate of another ELF class or machine is
skipped, as the loader skips it. A library that is found but does not define a version the needer
requires (``GLIBCXX_3.4.30``...) counts as missing, since the loader would stop with "version ... not
found". Missing sonames are then looked up among the env's own files of that name, of the needer's class
and machine and with the versions it requires (a copy known only by its ``DT_SONAME`` under another file
name is no use: the loader searches ``LD_LIBRARY_PATH`` by file name). The directories holding them are
returned in a fixed order (``prefix/lib`` first, then sorted), and nothing is returned when nothing is
missing. Sonames that nothing in the env provides (``libcuda.so.1`` comes with the driver) are reported as
:class:`Unresolved` warnings: they never stop a launch.

``/etc/ld.so.cache`` is parsed here rather than read from ``ldconfig -p``: the format is small and stable
(``glibc-ld.so.cache1.1``, optionally after the old ``ld.so-1.7.0`` table), parsing it takes well under a
millisecond, while ``ldconfig -p`` costs a process, may be missing from a slim image and prints a format
meant for people. An unknown format means "no cache": the default directories still apply.

The analysis is cached outside the env (``$XDG_CACHE_HOME/ma-launch`` or ``~/.cache/ma-launch``) in three
files per env: a small index with the signature (mtime, inode, ctime) of every scanned directory, the
search-relevant state outside the env (``LD_LIBRARY_PATH``, ``ld.so.cache``, the default directories, the
program) and the last result; the walk (each directory's listing and each candidate file's size, mtime,
inode); and the parsed dynamic information per file. A repeated launch reads the index and stats each
directory once; when nothing changed, the stored result is returned. When something changed, only the
changed directories are listed again and only new or changed files are parsed again. Cache files are
written atomically; a corrupt, unreadable or unwritable cache means a fresh scan, never a failed launch.

What is approximated: objects are linked as if loaded once, by the first object found to need them (the
loader's chain of RPATHs follows that), and a library nothing in the analysis pulls in is judged as loaded
by the env's Python; ``glibc-hwcaps`` subdirectories, ``LD_PRELOAD`` and the loader's reuse of an already
loaded soname are not modelled.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from stat import S_ISREG
from typing import Any, Optional

from launcher.ld.elf import ElfInfo, read_elf, read_shebang
from launcher.modelarts.facts import CANN_SONAMES

__all__ = ["AddedDir", "LdAnalysis", "Unresolved", "analyze", "default_cache_dir"]

_CACHE_VERSION = 1
_LD_SO_CACHE = "/etc/ld.so.cache"
# Top-level env directories that never hold loadable libraries (or hold other envs: base's envs/, pkgs/).
_SKIP_TOP = frozenset(
    {
        "bin",
        "sbin",
        "conda-meta",
        "include",
        "share",
        "man",
        "pkgs",
        "envs",
        "ssl",
        "etc",
        "var",
        "doc",
        "docs",
        "conda-bld",
        "mkspecs",
        "compiler_compat",
        "shell",
        "condabin",
    }
)
_SKIP_ANY = frozenset({"__pycache__", ".git", ".hg", ".svn"})
_SKIP_SUFFIXES = (".dist-info", ".egg-info")
_PYTHON_NAMES = ("python", "pypy")

_TRIPLETS = {
    62: "x86_64-linux-gnu",
    183: "aarch64-linux-gnu",
    3: "i386-linux-gnu",
    21: "powerpc64le-linux-gnu",
    22: "s390x-linux-gnu",
    40: "arm-linux-gnueabihf",
    243: "riscv64-linux-gnu",
}
_PLATFORMS = {62: "x86_64", 183: "aarch64", 3: "i686", 21: "powerpc64le", 22: "s390x", 243: "riscv64"}

_HINTS = {
    "libcuda.so.1": "it comes with the NVIDIA driver, mounted into the container at run time",
    "libnvidia-ml.so.1": "it comes with the NVIDIA driver, mounted into the container at run time",
}


def cann_warning(sonames: Sequence[str], needers: Sequence[str]) -> str:
    """The one warning for the CANN libraries nothing provides (torch_npu's libhccl.so, libascendcl.so)."""
    more = f" and {len(needers) - 1} more" if len(needers) > 1 else ""
    return (
        f"{', '.join(sonames)} not found (needed by {needers[0]}{more}): it needs the CANN toolkit: "
        "--cann auto or --source …/set_env.sh; the launch continues"
    )


@dataclass(frozen=True)
class AddedDir:
    """A directory to prepend, with (soname, one object that needed it) for each soname it provides."""

    directory: str
    provides: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Unresolved:
    """A soname the loader would not find (or not in the required ``versions``) and the env lacks."""

    soname: str
    needers: tuple[str, ...]
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class LdAnalysis:
    """The result of :func:`analyze`: directories to prepend, in order, and warnings."""

    added: tuple[AddedDir, ...]
    unresolved: tuple[Unresolved, ...]
    objects_scanned: int
    from_cache: bool

    @property
    def directories(self) -> tuple[str, ...]:
        """The directories to prepend to LD_LIBRARY_PATH, in order."""
        return tuple(a.directory for a in self.added)

    def to_json(self) -> dict[str, Any]:
        """A plain dict (for ``--dry-run --json`` and the cache)."""
        return {
            "added": [
                {"directory": a.directory, "provides": [list(p) for p in a.provides]} for a in self.added
            ],
            "unresolved": [
                {"soname": u.soname, "needers": list(u.needers), "versions": list(u.versions)}
                for u in self.unresolved
            ],
            "objects_scanned": self.objects_scanned,
            "from_cache": self.from_cache,
        }

    @classmethod
    def from_json(cls, data: Any, *, from_cache: bool = False) -> LdAnalysis:
        """Rebuild from :meth:`to_json`; raises ``ValueError``/``TypeError``/``KeyError`` if malformed."""
        added = tuple(
            AddedDir(str(a["directory"]), tuple((str(s), str(n)) for s, n in a["provides"]))
            for a in data["added"]
        )
        unresolved = tuple(
            Unresolved(
                str(u["soname"]), tuple(str(n) for n in u["needers"]), tuple(str(v) for v in u["versions"])
            )
            for u in data["unresolved"]
        )
        return cls(added, unresolved, int(data["objects_scanned"]), from_cache)

    def explain_lines(self) -> list[str]:
        """Human lines: why each directory is added, and a warning per unresolved soname."""
        lines: list[str] = []
        for a in self.added:
            why = "; ".join(f"{s} (needed by {n})" for s, n in a.provides)
            lines.append(f"LD_LIBRARY_PATH: prepend {a.directory} - it provides {why}")
        cann = [u for u in self.unresolved if u.soname in CANN_SONAMES]
        if cann:
            lines.append("warning: " + cann_warning([u.soname for u in cann], cann[0].needers))
        for u in self.unresolved:
            if u.soname in CANN_SONAMES:
                continue
            what = u.soname + (f" with version {', '.join(u.versions)}" if u.versions else "")
            more = f" and {len(u.needers) - 1} more" if len(u.needers) > 1 else ""
            hint = _HINTS.get(u.soname, "")
            lines.append(
                f"warning: {what} is not found by the loader and not provided by the env "
                f"(needed by {u.needers[0]}{more}){'; ' + hint if hint else ''}; the launch continues"
            )
        if not self.added:
            lines.insert(
                0,
                "LD_LIBRARY_PATH: nothing the env provides is missing "
                f"({self.objects_scanned} object{'' if self.objects_scanned == 1 else 's'} checked)",
            )
        return lines


def env_programs(prefix: str) -> list[str]:
    """The files in the env's ``bin/`` (for a whole-env report: its programs as well as its libraries)."""
    bindir = os.path.join(prefix, "bin")
    try:
        return sorted(os.path.join(bindir, name) for name in os.listdir(bindir))
    except OSError:
        return []


def default_cache_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/ma-launch``, else ``~/.cache/ma-launch``."""
    base = environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        home = environ.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "ma-launch")


def _debug(environ: Mapping[str, str], message: str) -> None:
    if environ.get("MA_LAUNCH_DEBUG"):
        sys.stderr.write(f"ma-launch: debug: ldscan: {message}\n")


# --------------------------------------------------------------------------------------------------
# Walking the env


def _is_candidate(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


def _list_dir(path: str, top: bool) -> tuple[list[str], list[str], list[str]]:
    """(subdirectories, candidate names, candidate names that are symlinks) of one directory."""
    subdirs: list[str] = []
    files: list[str] = []
    links: list[str] = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name in _SKIP_ANY or name.endswith(_SKIP_SUFFIXES) or (top and name in _SKIP_TOP):
                            continue
                        subdirs.append(name)
                    elif _is_candidate(name):
                        files.append(name)
                        if entry.is_symlink():
                            links.append(name)
                except OSError:
                    continue
    except (OSError, ValueError):
        pass
    subdirs.sort()
    files.sort()
    return subdirs, files, links


class _Walk:
    """The env's directories and candidate files, with signatures; reuses an older walk where valid.

    A directory whose signature (mtime, inode, ctime) is unchanged keeps its listing and the signatures of
    its files: installers (conda, pip) create, rename or delete files, which changes the directory, so a
    repeated launch costs one ``stat`` per directory. A file rewritten in place (``patchelf``, ``cp``
    over an existing file) is noticed only when its directory changes or the cache is removed.

    ``dirs`` maps a directory (relative to the prefix) to ``[signature, subdirs, candidate files,
    symlinked candidates, pruned]``. A subtree without any candidate file is kept as one *pruned* record
    for its top directory: a later walk re-lists it only when that directory's own signature changed
    (installers replace package directories, which changes the parent), so a repeated launch does not
    stat the thousands of pure-Python directories of a large env.
    """

    def __init__(
        self, prefix: str, old_dirs: Optional[dict[str, Any]], old_files: Optional[dict[str, Any]] = None
    ) -> None:
        self.prefix = prefix
        self.dirs: dict[str, list[Any]] = {}
        self.files: dict[str, list[int]] = {}  # rel path -> file sig
        self._old = old_dirs or {}
        self._old_files = old_files or {}
        self._visit("", prefix, 0)

    def _visit(self, rel: str, path: str, depth: int) -> bool:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return False
        sig = [st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
        prev = self._old.get(rel)
        reuse = isinstance(prev, list) and len(prev) == 5 and prev[0] == sig
        if reuse and prev is not None and prev[4]:
            self.dirs[rel] = prev
            return False
        if reuse and prev is not None:
            subdirs, files, links = prev[1], prev[2], prev[3]
        else:
            subdirs, files, links = _list_dir(path, rel == "")
        has = False
        base = rel + "/" if rel else ""
        out = self.files
        for name in files:
            if reuse:
                known = self._old_files.get(base + name)
                if isinstance(known, list) and len(known) == 4:
                    out[base + name] = known
                    has = True
                    continue
            try:
                fst = os.stat(path + "/" + name)
            except (OSError, ValueError):
                continue  # dangling link, loop, no permission
            if S_ISREG(fst.st_mode):
                out[base + name] = [fst.st_size, fst.st_mtime_ns, fst.st_ino, fst.st_dev]
                has = True
        if depth < 40:
            for name in subdirs:
                if self._visit(base + name, path + "/" + name, depth + 1):
                    has = True
        if not has and depth > 2 and not rel.endswith(("site-packages", "dist-packages")):
            for name in subdirs:
                self.dirs.pop(base + name, None)
            self.dirs[rel] = [sig, [], [], [], True]
        else:
            self.dirs[rel] = [sig, subdirs, files, links, False]
        return has


# --------------------------------------------------------------------------------------------------
# The system side of the loader's search


def _parse_ld_so_cache(data: bytes) -> dict[str, list[str]]:
    """soname -> paths, in the cache's order; empty for an unknown format."""
    new_magic = b"glibc-ld.so.cache1.1"
    out: dict[str, list[str]] = {}
    start = 0
    if data.startswith(b"ld.so-1.7.0"):
        if len(data) < 16:
            return out
        (nlibs,) = struct.unpack_from("<I", data, 12)
        start = 16 + nlibs * 12
        start = (start + 7) & ~7
        idx = data.find(new_magic, start, start + 64)
        if idx < 0:
            return out
        start = idx
    if data[start : start + len(new_magic)] != new_magic:
        return out
    for endian in ("<", ">"):
        try:
            nlibs, len_strings = struct.unpack_from(endian + "II", data, start + 20)
        except struct.error:
            return out
        entries = start + 48
        if entries + nlibs * 24 + len_strings <= len(data) + 8 and nlibs < 1_000_000:
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
        path = data[start + value : v_end].decode("utf-8", "surrogateescape")
        out.setdefault(name, []).append(path)
    return out


def _default_dirs(info: ElfInfo) -> tuple[str, ...]:
    triplet = _TRIPLETS.get(info.machine)
    dirs: list[str] = []
    if triplet and (info.elf_class == 2 or info.machine in (3, 40)):
        dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    if info.elf_class == 2:
        dirs += ["/lib64", "/usr/lib64"]
    else:
        dirs += ["/lib32", "/usr/lib32"]
    dirs += ["/lib", "/usr/lib"]
    return tuple(dirs)


def _expand(spec: Optional[str], origin: str, info: ElfInfo) -> list[str]:
    """The directories of an RPATH/RUNPATH string, with $ORIGIN, $LIB and $PLATFORM expanded."""
    if not spec:
        return []
    lib = "lib64" if info.elf_class == 2 else "lib"
    platform = _PLATFORMS.get(info.machine, os.uname().machine)
    out: list[str] = []
    for raw in spec.split(":"):
        if not raw:
            continue
        item = raw
        if "$" in item:
            for var, value in (("ORIGIN", origin), ("LIB", lib), ("PLATFORM", platform)):
                item = item.replace("${" + var + "}", value).replace("$" + var, value)
        if not item.startswith("/") or "$" in item:
            continue  # relative to the working directory, or an unknown token: the loader ignores it
        out.append(os.path.normpath(item))
    return out


# --------------------------------------------------------------------------------------------------
# The analysis


@dataclass
class _Obj:
    path: str
    info: ElfInfo
    origin: str
    loader: Optional[_Obj] = None
    is_main: bool = False


class _Resolver:
    def __init__(
        self,
        prefix: str,
        walk: _Walk,
        infos: dict[str, Optional[ElfInfo]],
        ld_path: list[str],
    ) -> None:
        self.prefix = prefix
        self.ld_path = ld_path
        # directory -> {name: (path, info)} for the env's scanned directories
        self.env_dirs: dict[str, dict[str, tuple[str, Optional[ElfInfo]]]] = {}
        for rel, record in walk.dirs.items():
            d = os.path.join(prefix, rel) if rel else prefix
            table: dict[str, tuple[str, Optional[ElfInfo]]] = {}
            for name in record[2]:
                frel = f"{rel}/{name}" if rel else name
                if frel in walk.files:
                    table[name] = (os.path.join(d, name), infos.get(frel))
            self.env_dirs[d] = table
        self._sys: dict[str, Optional[ElfInfo]] = {}
        self._ld_cache: Optional[dict[str, list[str]]] = None
        self._memo: dict[tuple[Any, ...], tuple[Optional[str], Optional[ElfInfo], str]] = {}

    def ld_cache(self) -> dict[str, list[str]]:
        if self._ld_cache is None:
            try:
                with open(_LD_SO_CACHE, "rb") as f:
                    self._ld_cache = _parse_ld_so_cache(f.read())
            except (OSError, ValueError, struct.error):
                self._ld_cache = {}
        return self._ld_cache

    def _sys_info(self, path: str) -> Optional[ElfInfo]:
        if path not in self._sys:
            self._sys[path] = read_elf(path)
        return self._sys[path]

    def in_dir(self, directory: str, name: str, arch: tuple[int, bool, int]) -> Optional[tuple[str, ElfInfo]]:
        table = self.env_dirs.get(directory)
        if table is not None:
            hit = table.get(name)
            if hit is None or hit[1] is None or hit[1].arch_key != arch:
                return None
            return hit[0], hit[1]
        path = os.path.join(directory, name)
        info = self._sys_info(path)
        if info is None or info.arch_key != arch:
            return None
        return path, info

    def search_dirs(self, obj: _Obj, main: Optional[_Obj]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(directories before LD_LIBRARY_PATH, directories after it) for objects loaded by ``obj``."""
        before: list[str] = []
        if not obj.info.runpath:
            chain: Optional[_Obj] = obj
            seen: set[int] = set()
            while chain is not None and id(chain) not in seen:
                seen.add(id(chain))
                if not chain.info.runpath:
                    before += _expand(chain.info.rpath, chain.origin, chain.info)
                chain = chain.loader
            if main is not None and id(main) not in seen and not main.info.runpath:
                before += _expand(main.info.rpath, main.origin, main.info)
        after = _expand(obj.info.runpath, obj.origin, obj.info)
        return tuple(before), tuple(after)

    def find(
        self, name: str, obj: _Obj, dirs: tuple[tuple[str, ...], tuple[str, ...]], ld_path: Sequence[str]
    ) -> tuple[Optional[str], Optional[ElfInfo], str]:
        """Where the loader finds ``name`` for ``obj``: (path, info, stage) or (None, None, "")."""
        info = obj.info
        nodeflib = bool(info.flags_1 & 0x800)
        key = (name, dirs, tuple(ld_path), info.arch_key, nodeflib)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        arch = info.arch_key
        result: tuple[Optional[str], Optional[ElfInfo], str] = (None, None, "")
        for stage, group in (("rpath", dirs[0]), ("ld_library_path", ld_path), ("runpath", dirs[1])):
            for d in group:
                found = self.in_dir(d, name, arch)
                if found:
                    result = (found[0], found[1], stage)
                    break
            if result[0]:
                break
        if result[0] is None and not nodeflib:
            for path in self.ld_cache().get(name, ()):
                cinfo = self._sys_info(path)
                if cinfo is not None and cinfo.arch_key == arch:
                    result = (path, cinfo, "cache")
                    break
            else:
                for d in _default_dirs(info):
                    found = self.in_dir(d, name, arch)
                    if found:
                        result = (found[0], found[1], "default")
                        break
        self._memo[key] = result
        return result


def _lib_order(prefix: str) -> Any:
    first = (os.path.join(prefix, "lib"), os.path.join(prefix, "lib64"))

    def key(d: str) -> tuple[int, str]:
        return (first.index(d) if d in first else len(first), d)

    return key


def _shebang_target(path: str, environ: Mapping[str, str]) -> str:
    """Follow ``#!`` lines (``#!/usr/bin/env python`` included) to the ELF program that runs ``path``."""
    for _ in range(4):
        words = read_shebang(path) if os.path.isfile(path) else None
        if not words:
            return path
        interp, args = words[0], words[1:]
        if os.path.basename(interp) == "env":
            names = [a for a in args if not a.startswith("-") and "=" not in a]
            if not names:
                return path
            found = None
            for d in (environ.get("PATH") or "").split(":"):
                if d and os.access(os.path.join(d, names[0]), os.X_OK):
                    found = os.path.join(d, names[0])
                    break
            if found is None:
                return path
            interp = found
        path = interp
    return path


def _env_python(prefix: str) -> Optional[str]:
    for name in ("python3", "python"):
        p = os.path.join(prefix, "bin", name)
        if os.path.exists(p):
            return os.path.realpath(p)
    return None


def _is_python(path: str) -> bool:
    return os.path.basename(path).startswith(_PYTHON_NAMES)


def _program_objects(
    prefix: str, program: Optional[str], extra_objects: Sequence[str], environ: Mapping[str, str]
) -> tuple[list[str], Optional[str], Optional[str]]:
    """(root object paths, main program path, the Python that loads extension modules)."""
    roots: list[str] = []
    main = None
    env_python = _env_python(prefix)
    python = env_python
    if program:
        target = _shebang_target(os.path.abspath(program), environ)
        main = os.path.realpath(target)
        roots.append(main)
        if _is_python(main):
            python = main
            if env_python and env_python != main:
                roots.append(env_python)
    elif env_python:
        roots.append(env_python)
        main = env_python
    roots += [os.path.abspath(p) for p in extra_objects]
    return roots, main, python


def _analyze_now(
    prefix: str,
    walk: _Walk,
    infos: dict[str, Optional[ElfInfo]],
    roots: list[str],
    main_path: Optional[str],
    python_path: Optional[str],
    ld_path: list[str],
) -> LdAnalysis:
    res = _Resolver(prefix, walk, infos, ld_path)

    def load(path: str) -> Optional[ElfInfo]:
        d, name = os.path.split(path)
        table = res.env_dirs.get(d)
        if table is not None and name in table:
            return table[name][1]
        return res._sys_info(path)

    objs: dict[str, _Obj] = {}
    main: Optional[_Obj] = None
    python: Optional[_Obj] = None
    for special in (main_path, python_path):
        if special and special not in objs:
            info = load(special)
            if info is not None:
                objs[special] = _Obj(special, info, os.path.dirname(os.path.realpath(special)), is_main=True)
    if main_path:
        main = objs.get(main_path)
    if python_path:
        python = objs.get(python_path)

    # One needer per file identity: prefer the real file over its symlinked names.
    by_ident: dict[tuple[int, int], tuple[str, bool]] = {}
    for rel, record in walk.dirs.items():
        links = set(record[3])
        for name in record[2]:
            frel = f"{rel}/{name}" if rel else name
            sig = walk.files.get(frel)
            if sig is None or infos.get(frel) is None:
                continue
            ident = (sig[3], sig[2])
            current = by_ident.get(ident)
            if current is None or (current[1] and name not in links):
                by_ident[ident] = (frel, name in links)
    env_objects = sorted(v[0] for v in by_ident.values())
    site = os.sep + "site-packages" + os.sep

    queue: list[_Obj] = []
    for path in roots:
        obj = objs.get(path)
        if obj is None:
            info = load(path)
            if info is None:
                continue
            obj = objs[path] = _Obj(path, info, os.path.dirname(path))
        queue.append(obj)
    # Extension modules are dlopen()ed by Python (loaded first, so their RPATHs form the chain of the
    # libraries they pull in); the remaining libraries are checked on their own afterwards.
    standalone: list[_Obj] = []
    for rel in env_objects:
        path = os.path.join(prefix, rel)
        info = infos[rel]
        if path in objs or info is None:
            continue
        obj = objs[path] = _Obj(path, info, os.path.dirname(path))
        in_python = site in path or "/lib-dynload/" in path
        name = os.path.basename(path)
        if in_python and (not name.startswith("lib") or ".cpython-" in name or ".abi3." in name):
            obj.loader = python
            queue.append(obj)
        else:
            standalone.append(obj)

    problems: list[tuple[str, str, tuple[str, ...]]] = []
    unresolved: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    visited: set[str] = set()
    contexts: dict[str, tuple[_Obj, tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    i = 0
    while True:
        if i >= len(queue):
            rest = [o for o in standalone if o.path not in visited]
            if not rest:
                break
            first = rest[0]
            if (
                first.loader is None
                and python is not None
                and (site in first.path or "/lib-dynload/" in first.path)
            ):
                first.loader = python
            queue.append(first)
            standalone = rest[1:]
        obj = queue[i]
        i += 1
        if obj.path in visited:
            continue
        visited.add(obj.path)
        root = obj
        hops = 0
        while root.loader is not None and hops < 64:
            root = root.loader
            hops += 1
        # Libraries nothing above pulled in are judged as loaded by the env's Python (if any): that is
        # what loads almost everything in an env (conda's python carries RPATH $ORIGIN/../lib).
        dirs = res.search_dirs(obj, root if root.is_main else (python or main))
        contexts[obj.path] = (obj, dirs)
        for name in obj.info.needed:
            if "/" in name:
                continue
            versions = obj.info.versions_needed_from(name)
            fpath, finfo, stage = res.find(name, obj, dirs, ld_path)
            if fpath is not None and finfo is not None and finfo.defines_versions(versions):
                child = objs.get(fpath)
                if (
                    child is not None
                    and child.path not in visited
                    and child.loader is None
                    and not child.is_main
                ):
                    child.loader = obj
                    queue.append(child)
                continue
            if stage == "rpath":
                unresolved.setdefault((name, versions), []).append(obj.path)
            else:
                problems.append((name, obj.path, versions))

    # Choose provider directories.
    by_name: dict[str, list[tuple[str, ElfInfo]]] = {}
    for d, table in res.env_dirs.items():
        for name, (_p, info) in table.items():
            if info is not None:
                by_name.setdefault(name, []).append((d, info))
    order = _lib_order(prefix)
    chosen: dict[str, list[tuple[str, str]]] = {}
    for name, needer, versions in sorted(problems):
        obj = objs[needer]
        candidates = sorted(
            (
                d
                for d, info in by_name.get(name, ())
                if info.arch_key == obj.info.arch_key and info.defines_versions(versions)
            ),
            key=order,
        )
        if not candidates:
            unresolved.setdefault((name, versions), []).append(needer)
            continue
        pick = next((d for d in chosen if d in candidates), candidates[0])
        provides = chosen.setdefault(pick, [])
        if all(s != name for s, _n in provides):
            provides.append((name, needer))

    # Check the choice as the loader would see it: a version fix that an earlier directory shadows, or a
    # needer whose RPATH wins, stays a warning.
    new_path = sorted(chosen, key=order) + ld_path
    for name, needer, versions in sorted(problems):
        if any(k == (name, versions) and needer in v for k, v in unresolved.items()):
            continue
        obj, dirs = contexts[needer]
        fpath, finfo, _stage = res.find(name, obj, dirs, new_path)
        if fpath is None or finfo is None or not finfo.defines_versions(versions):
            unresolved.setdefault((name, versions), []).append(needer)

    added = tuple(AddedDir(d, tuple(sorted(chosen[d]))) for d in sorted(chosen, key=order))
    unres = tuple(
        Unresolved(name, tuple(sorted(set(needers))), versions)
        for (name, versions), needers in sorted(unresolved.items())
    )
    return LdAnalysis(added, unres, len(visited), False)


# --------------------------------------------------------------------------------------------------
# The cache


_MAGIC = b"ma-launch-ldscan "


def _read_json(path: str) -> Any:
    """The JSON payload of a cache file, or ``None`` when it is missing, truncated or altered."""
    import json
    import zlib

    try:
        with open(path, "rb") as f:
            raw = f.read()
        head, _nl, body = raw.partition(b"\n")
        if not head.startswith(_MAGIC) or int(head[len(_MAGIC) :], 16) != zlib.crc32(body):
            return None
        return json.loads(body)
    except (OSError, ValueError, UnicodeError, RecursionError):
        return None


def _write_json(path: str, data: Any) -> bool:
    """Write a cache file atomically (temporary file + rename); ``False`` when that is not possible."""
    import json
    import tempfile
    import zlib

    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    except (OSError, ValueError):
        return False
    try:
        body = json.dumps(data, separators=(",", ":")).encode("utf-8", "surrogateescape")
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + b"%08x\n" % zlib.crc32(body) + body)
        os.replace(tmp, path)
        return True
    except (OSError, ValueError, TypeError, UnicodeError):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False


def _system_key(
    prefix: str, roots: list[str], main: Optional[str], python: Optional[str], ld_path: list[str]
) -> list[Any]:
    """Everything outside the env's walk that the result depends on."""

    def sig(p: str) -> Any:
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            return None
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    dirs = sorted(
        {
            *ld_path,
            "/lib",
            "/usr/lib",
            "/lib64",
            "/usr/lib64",
            *(f"/lib/{t}" for t in _TRIPLETS.values() if os.path.isdir(f"/lib/{t}")),
            *(f"/usr/lib/{t}" for t in _TRIPLETS.values() if os.path.isdir(f"/usr/lib/{t}")),
        }
    )
    return [
        _CACHE_VERSION,
        prefix,
        roots,
        main,
        python,
        ld_path,
        [[p, sig(p)] for p in roots],
        sig(_LD_SO_CACHE),
        [[d, sig(d)] for d in dirs],
    ]


def _cache_stem(prefix: str) -> str:
    """A readable, file-name-safe name for the env's cache files."""
    import zlib

    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in prefix.strip("/"))[-80:]
    return f"{safe}-{zlib.crc32(prefix.encode('utf-8', 'surrogateescape')):08x}"


def _unchanged(prefix: str, sigs: Any) -> bool:
    """Do all directories of the previous walk still have their signatures? (One stat each.)"""
    if not isinstance(sigs, dict) or not sigs:
        return False
    stat_ = os.stat
    for rel, sig in sigs.items():
        try:
            st = stat_(prefix + "/" + rel if rel else prefix)
        except (OSError, ValueError, TypeError):
            return False
        if sig != [st.st_mtime_ns, st.st_ino, st.st_ctime_ns]:
            return False
    return True


def _ld_path(environ: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for item in (environ.get("LD_LIBRARY_PATH") or "").replace(";", ":").split(":"):
        if item and item.startswith("/") and item not in out:
            out.append(os.path.normpath(item))
    return out


def analyze(
    prefix: str,
    program: Optional[str],
    environ: Mapping[str, str],
    *,
    cache_dir: Optional[str] = None,
    extra_objects: Sequence[str] = (),
) -> LdAnalysis:
    """Which env directories must be prepended to LD_LIBRARY_PATH so that the loader finds what the
    program, the env's Python and the env's shared objects need. Never raises for file-system trouble."""
    prefix = os.path.normpath(os.path.abspath(prefix))
    ld_path = _ld_path(environ)
    roots, main, python = _program_objects(prefix, program, extra_objects, environ)
    system_key = _system_key(prefix, roots, main, python, ld_path)

    cdir = cache_dir if cache_dir is not None else default_cache_dir(environ)
    try:
        return _analyze_with_cache(prefix, environ, cdir, roots, main, python, ld_path, system_key, True)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # Cache files that are valid JSON but not what this version wrote: start afresh.
        _debug(environ, f"ignoring the cache in {cdir}: {exc!r}")
        return _analyze_with_cache(prefix, environ, cdir, roots, main, python, ld_path, system_key, False)


def _analyze_with_cache(
    prefix: str,
    environ: Mapping[str, str],
    cdir: str,
    roots: list[str],
    main: Optional[str],
    python: Optional[str],
    ld_path: list[str],
    system_key: list[Any],
    read_cache: bool,
) -> LdAnalysis:
    stem = _cache_stem(prefix)
    index_path = os.path.join(cdir, f"ld-{stem}.json")
    walk_path = os.path.join(cdir, f"ld-{stem}.walk.json")
    infos_path = os.path.join(cdir, f"ld-{stem}.objects.json")

    # The fast path: the same question, and not one scanned directory changed.
    index = _read_json(index_path) if cdir and read_cache else None
    if (
        isinstance(index, dict)
        and index.get("v") == _CACHE_VERSION
        and index.get("prefix") == prefix
        and index.get("system") == system_key
        and _unchanged(prefix, index.get("sigs"))
    ):
        try:
            return LdAnalysis.from_json(index["result"], from_cache=True)
        except (KeyError, TypeError, ValueError, AttributeError):
            _debug(environ, f"ignoring the cache {index_path}: malformed result")
    elif index is not None:
        _debug(environ, "re-analysing: the env, the program or the system changed")

    stored_walk = _read_json(walk_path) if cdir and read_cache else None
    if not (
        isinstance(stored_walk, dict)
        and stored_walk.get("v") == _CACHE_VERSION
        and stored_walk.get("prefix") == prefix
    ):
        stored_walk = {}
    old_dirs = stored_walk.get("dirs") if isinstance(stored_walk.get("dirs"), dict) else None
    old_files = stored_walk.get("files") if isinstance(stored_walk.get("files"), dict) else None
    walk = _Walk(prefix, old_dirs, old_files)

    # Parsed dynamic information: reuse the entries whose file signature is unchanged.
    stored = _read_json(infos_path) if walk.files and read_cache else None
    old_infos = (
        stored.get("objects") if isinstance(stored, dict) and stored.get("v") == _CACHE_VERSION else None
    )
    if not isinstance(old_infos, dict):
        old_infos = {}
    by_sig: dict[str, Optional[ElfInfo]] = {}
    new_infos: dict[str, Any] = {}
    infos: dict[str, Optional[ElfInfo]] = {}
    for rel, sig in walk.files.items():
        skey = ":".join(map(str, sig))
        if skey in by_sig:
            infos[rel] = by_sig[skey]
            continue
        info: Optional[ElfInfo] = None
        parsed = False
        if skey in old_infos:
            raw = old_infos[skey]
            try:
                info = None if raw is None else ElfInfo.from_list(raw)
                parsed = True
            except (ValueError, TypeError):
                parsed = False
        if not parsed:
            info = read_elf(os.path.join(prefix, rel))
        by_sig[skey] = info
        infos[rel] = info
        new_infos[skey] = None if info is None else info.to_list()

    result = _analyze_now(prefix, walk, infos, roots, main, python, ld_path)

    if cdir:
        if new_infos.keys() != old_infos.keys():
            _write_json(infos_path, {"v": _CACHE_VERSION, "objects": new_infos})
        ok = _write_json(
            walk_path, {"v": _CACHE_VERSION, "prefix": prefix, "dirs": walk.dirs, "files": walk.files}
        ) and _write_json(
            index_path,
            {
                "v": _CACHE_VERSION,
                "prefix": prefix,
                "system": system_key,
                "sigs": {rel: record[0] for rel, record in walk.dirs.items()},
                "result": result.to_json(),
            },
        )
        if not ok:
            _debug(environ, f"could not write the cache {index_path}; the next launch scans again")
    return result
