"""The loader's search for a ``DT_NEEDED`` soname, as glibc's ``ld.so`` does it.

For a needer the loader looks in, in order:

1. ``DT_RPATH`` of the needer and of the objects that loaded it, then of the main program - only when the
   needer has no ``DT_RUNPATH`` (an object with a ``DT_RUNPATH`` has its own ``DT_RPATH`` ignored);
2. ``LD_LIBRARY_PATH``;
3. ``DT_RUNPATH`` of the needer only;
4. ``/etc/ld.so.cache`` and 5. the default directories (both skipped for ``DF_1_NODEFLIB`` objects).

``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` are expanded; a candidate of another ELF class or machine is
skipped, as the loader skips it. Files in the env's scanned directories are known from the walk (no file
system access); files elsewhere are read once and remembered.
"""

from __future__ import annotations

import os

from launcher.ld.elf import read_elf
from launcher.ld.ldsocache import load_ld_so_cache
from launcher.ld.sysdirs import default_dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal, Optional

    from launcher.ld.elfinfo import ElfInfo

    #: Where a soname was found: the stage of the search above ("" = not found).
    Stage = Literal["rpath", "ld_library_path", "runpath", "cache", "default", ""]
    #: (directories searched before LD_LIBRARY_PATH, directories searched after it).
    SearchDirs = tuple[tuple[str, ...], tuple[str, ...]]
    #: directory -> {file name: (path, parsed object or None)}.
    DirTable = dict[str, dict[str, tuple[str, Optional[ElfInfo]]]]

_PLATFORMS = {62: "x86_64", 183: "aarch64", 3: "i686", 21: "powerpc64le", 22: "s390x", 243: "riscv64"}
_ELFCLASS64 = 2


def expand(spec: Optional[str], origin: str, info: ElfInfo) -> list[str]:
    """The directories of an RPATH/RUNPATH string, with $ORIGIN, $LIB and $PLATFORM expanded."""
    if not spec:
        return []
    lib = "lib64" if info.elf_class == _ELFCLASS64 else "lib"
    platform = _PLATFORMS.get(info.machine, os.uname().machine)
    out: list[str] = []
    for item in spec.split(":"):
        if not item:
            continue
        if "$" in item:
            for var, value in (("ORIGIN", origin), ("LIB", lib), ("PLATFORM", platform)):
                item = item.replace("${" + var + "}", value).replace("$" + var, value)  # noqa: PLW2901
        if not item.startswith("/") or "$" in item:
            continue  # relative to the working directory, or an unknown token: the loader ignores it
        out.append(os.path.normpath(item))
    return out


class Node:
    """One ELF object in the analysis: where it is, what it is, and which object loaded it (whose RPATH
    chain it inherits). ``is_main`` marks a program: it starts its own chain."""

    __slots__ = ("info", "is_main", "loader", "origin", "path")

    def __init__(self, path: str, info: ElfInfo, origin: str, *, is_main: bool = False) -> None:
        self.path = path
        self.info = info
        self.origin = origin
        self.loader: Optional[Node] = None
        self.is_main = is_main

    def root(self) -> Node:
        """The object at the top of the chain of loaders."""
        node, hops = self, 0
        while node.loader is not None and hops < 64:
            node, hops = node.loader, hops + 1
        return node


class Found:
    """Where the loader finds a soname for a needer: the file, its parsed form and the search stage."""

    __slots__ = ("directory", "info", "path", "stage")

    def __init__(self, path: str, info: ElfInfo, stage: Stage) -> None:
        self.path = path
        self.info = info
        self.stage: Stage = stage
        self.directory = os.path.dirname(path)


class Resolver:
    """The loader's search over the env's scanned directories (``env_dirs``) and the system."""

    def __init__(self, env_dirs: DirTable) -> None:
        self.env_dirs = env_dirs
        self._sys: dict[str, Optional[ElfInfo]] = {}
        self._ld_cache: Optional[dict[str, list[str]]] = None
        self._memo: dict[tuple[object, ...], Optional[Found]] = {}

    def ld_cache(self) -> dict[str, list[str]]:
        """``/etc/ld.so.cache``, read on first use."""
        if self._ld_cache is None:
            self._ld_cache = load_ld_so_cache()
        return self._ld_cache

    def info_of(self, path: str) -> Optional[ElfInfo]:
        """The parsed object at ``path``: from the walk for env files, else read once."""
        directory, name = os.path.split(path)
        table = self.env_dirs.get(directory)
        if table is not None and name in table:
            return table[name][1]
        if path not in self._sys:
            self._sys[path] = read_elf(path)
        return self._sys[path]

    def in_dir(self, directory: str, name: str, arch: tuple[int, bool, int]) -> Optional[tuple[str, ElfInfo]]:
        """The file ``name`` in ``directory`` if it is an ELF object of the needer's ``arch``."""
        table = self.env_dirs.get(directory)
        if table is not None:
            hit = table.get(name)
            if hit is None or hit[1] is None or hit[1].arch_key != arch:
                return None
            return hit[0], hit[1]
        path = os.path.join(directory, name)
        info = self.info_of(path)
        if info is None or info.arch_key != arch:
            return None
        return path, info

    def search_dirs(self, node: Node, main: Optional[Node]) -> SearchDirs:
        """(directories before LD_LIBRARY_PATH, directories after it) for the needs of ``node``."""
        before: list[str] = []
        if not node.info.runpath:
            chain: Optional[Node] = node
            seen: set[int] = set()
            while chain is not None and id(chain) not in seen:
                seen.add(id(chain))
                if not chain.info.runpath:
                    before += expand(chain.info.rpath, chain.origin, chain.info)
                chain = chain.loader
            if main is not None and id(main) not in seen and not main.info.runpath:
                before += expand(main.info.rpath, main.origin, main.info)
        return tuple(before), tuple(expand(node.info.runpath, node.origin, node.info))

    def find(self, name: str, node: Node, dirs: SearchDirs, ld_path: Sequence[str]) -> Optional[Found]:
        """Where the loader finds ``name`` for ``node`` (searching ``dirs`` and ``ld_path``), or ``None``."""
        info = node.info
        key = (name, dirs, tuple(ld_path), info.arch_key, info.nodeflib)
        if key in self._memo:
            return self._memo[key]
        result = self._search(name, info, dirs, ld_path)
        self._memo[key] = result
        return result

    def _search(self, name: str, info: ElfInfo, dirs: SearchDirs, ld_path: Sequence[str]) -> Optional[Found]:
        arch = info.arch_key
        stages: tuple[tuple[Stage, Sequence[str]], ...] = (
            ("rpath", dirs[0]),
            ("ld_library_path", ld_path),
            ("runpath", dirs[1]),
        )
        for stage, group in stages:
            for directory in group:
                hit = self.in_dir(directory, name, arch)
                if hit:
                    return Found(hit[0], hit[1], stage)
        if info.nodeflib:
            return None
        for path in self.ld_cache().get(name, ()):
            cached = self.info_of(path)
            if cached is not None and cached.arch_key == arch:
                return Found(path, cached, "cache")
        for directory in default_dirs(info):
            hit = self.in_dir(directory, name, arch)
            if hit:
                return Found(hit[0], hit[1], "default")
        return None
