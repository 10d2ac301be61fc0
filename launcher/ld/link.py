"""Linking the env as the loader would, to find what it would miss and what an ``LD_LIBRARY_PATH`` entry
outside the env would put in place of the env's own copy.

The objects are linked as if loaded once, by the first object found to need them (the loader's chain of
RPATHs follows that). The program and the env's Python start chains of their own; extension modules are
loaded by the env's Python; a library nothing pulls in is judged as loaded by the env's Python too (that is
what loads almost everything in an env; conda's python carries RPATH ``$ORIGIN/../lib``). A soname the
loader would not find, or find without a version the needer requires, is *missing*
(:mod:`launcher.ld.choose` picks the env directories that provide it). A soname that an env object would
load from an ``LD_LIBRARY_PATH`` entry outside the env (the platform's ``/usr/local/cuda/lib64``...)
although its own RUNPATH, or else the env, holds a copy is *overridden*: ``LD_LIBRARY_PATH`` outranks
``DT_RUNPATH``, so a system cuDNN of another minor version replaces the wheel's.

The edges of what was found are kept, so that what the program certainly loads can be told from what it
may never load: the program, the env's Python, the extension modules it can import (every directory
between ``site-packages`` and the module is a package name), and their ``DT_NEEDED`` closure.

Not modelled: ``glibc-hwcaps`` subdirectories, ``LD_PRELOAD``, the reuse of an already loaded soname.
"""

from __future__ import annotations

import os

from launcher.ld.search import Node, Resolver
from launcher.ld.sonames import is_driver_soname
from launcher.ld.sysdirs import inside

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Optional

    from launcher.ld.elfinfo import ElfInfo
    from launcher.ld.search import DirTable, Found, SearchDirs

    #: (soname, needer path, required versions)
    Need = tuple[str, str, tuple[str, ...]]

_PY_DIRS = ("/site-packages/", "/dist-packages/", "/lib-dynload/")


class Roots:
    """What the analysis starts from: the program, the env's Python (which loads extension modules), and
    other programs to check as programs of their own (the env's executables, for ``--ld-report`` and when
    the program is a shell or a script)."""

    __slots__ = ("main", "others", "python")

    def __init__(self, main: Optional[str], python: Optional[str], others: Sequence[str] = ()) -> None:
        self.main = main
        self.python = python
        self.others = tuple(others)


def extension_kind(path: str) -> tuple[bool, bool]:
    """(is a Python extension module - Python loads it with ``dlopen`` -, is importable: every directory
    between ``site-packages`` and it is a package name)."""
    for marker in _PY_DIRS:
        at = path.rfind(marker)
        if at < 0:
            continue
        name = path.rsplit("/", 1)[-1]
        if name.startswith("lib") and ".cpython-" not in name and ".abi3." not in name:
            return False, False
        packages = path[at + len(marker) :].split("/")[:-1]
        return True, all(p.isidentifier() for p in packages)
    return False, False


def lib_order(prefix: str) -> Callable[[str], tuple[int, str]]:
    """Sort key for chosen directories: ``prefix/lib``, ``prefix/lib64``, then by name."""
    first = (os.path.join(prefix, "lib"), os.path.join(prefix, "lib64"))

    def key(directory: str) -> tuple[int, str]:
        return (first.index(directory) if directory in first else len(first), directory)

    return key


class Linker:
    """One analysis run over the env's ``table`` (directory -> file name -> (path, parsed object)).
    ``programs`` holds the parsed env executables by path. Call :meth:`link` once."""

    def __init__(
        self,
        prefix: str,
        table: DirTable,
        ld_path: Sequence[str],
        roots: Roots,
        programs: Mapping[str, Optional[ElfInfo]],
    ) -> None:
        self.prefix = prefix
        self.ld_path = list(ld_path)
        self.res = Resolver(table)
        self.roots = roots
        self.programs = programs
        self.nodes: dict[str, Node] = {}
        self.main: Optional[Node] = None
        self.python: Optional[Node] = None
        self.certain_roots: list[str] = []
        self.queue: list[Node] = []
        self.standalone: list[Node] = []
        self.visited: set[str] = set()
        self.contexts: dict[str, SearchDirs] = {}
        self.edges: dict[str, set[str]] = {}  # needer -> what it loads
        self.missing: list[Need] = []
        # soname -> needers it stays unresolved for: found only through an RPATH (LD_LIBRARY_PATH cannot
        # help) or provided by nothing
        self.unresolved: dict[str, set[str]] = {}
        # soname -> versions required of it that the copies found lack
        self.lacking: dict[str, set[str]] = {}
        # sonames some lookup searched LD_LIBRARY_PATH for (no RPATH hit before it), the driver's aside:
        # the platform mounts it, and where it is found changes no directory ma-launch adds
        self.sensitive: set[str] = set()
        # (soname, env needer, the copy outside the env it would load, the needer's RUNPATH directory
        # holding its own copy or None)
        self.outside: list[tuple[str, str, str, Optional[str]]] = []
        self._by_name: Optional[dict[str, list[tuple[str, ElfInfo]]]] = None

    def link(self, env_libs: Iterable[str]) -> Linker:
        """Link the roots, then ``env_libs`` (the env's libraries, by path); returns ``self``, whose
        attributes are then the facts :func:`launcher.ld.choose.decide` decides on."""
        self._add_roots()
        self._add_env_libs(env_libs)
        self._traverse()
        return self

    # ----------------------------------------------------------------------------------------------
    # The objects

    def _info(self, path: str) -> Optional[ElfInfo]:
        if path in self.programs:
            return self.programs[path]
        return self.res.info_of(path)

    def _node(self, path: str, *, is_main: bool, origin: Optional[str] = None) -> Optional[Node]:
        node = self.nodes.get(path)
        if node is None:
            info = self._info(path)
            if info is None:
                return None
            node = self.nodes[path] = Node(path, info, origin or os.path.dirname(path), is_main=is_main)
        return node

    def _add_roots(self) -> None:
        """The program and the env's Python (each a chain of its own), then the other programs."""
        for path in (self.roots.main, self.roots.python):
            if path:
                node = self._node(path, is_main=True, origin=os.path.dirname(os.path.realpath(path)))
                if node is not None:
                    self.queue.append(node)
                    self.certain_roots.append(path)
        self.main = self.nodes.get(self.roots.main or "")
        self.python = self.nodes.get(self.roots.python or "")
        for path in self.roots.others:
            info = self._info(path)
            node = self._node(path, is_main=info is not None and info.interp is not None)
            if node is not None:
                self.queue.append(node)

    def _add_env_libs(self, env_libs: Iterable[str]) -> None:
        """The env's libraries: extension modules are loaded by the env's Python; the rest is checked on
        its own after everything the roots pull in."""
        for path in env_libs:
            if path in self.nodes:
                continue
            node = self._node(path, is_main=False)
            if node is None:
                continue
            is_ext, importable = extension_kind(path)
            if is_ext:
                node.loader = self.python
                self.queue.append(node)
                if importable:
                    self.certain_roots.append(path)
            else:
                self.standalone.append(node)

    # ----------------------------------------------------------------------------------------------
    # Linking

    def _next(self, index: int) -> Optional[Node]:
        """The object to link next: the queue first, then the first standalone library not linked yet."""
        if index < len(self.queue):
            return self.queue[index]
        while self.standalone:
            node = self.standalone.pop(0)
            if node.path not in self.visited:
                if node.loader is None and self.python is not None and any(m in node.path for m in _PY_DIRS):
                    node.loader = self.python
                self.queue.append(node)
                return node
        return None

    def _traverse(self) -> None:
        index = 0
        while True:
            node = self._next(index)
            if node is None:
                return
            index += 1
            if node.path in self.visited:
                continue
            self.visited.add(node.path)
            root = node.root()
            dirs = self.res.search_dirs(node, root if root.is_main else (self.python or self.main))
            self.contexts[node.path] = dirs
            for name in node.info.needed:
                if "/" not in name:
                    self._link(node, name, dirs)

    def _link(self, node: Node, name: str, dirs: SearchDirs) -> None:
        """Find one ``DT_NEEDED`` entry of ``node``; queue what it loads, record what goes wrong."""
        versions = node.info.versions_needed_from(name)
        found = self.res.find(name, node, dirs, self.ld_path)
        if (found is None or found.stage != "rpath") and not is_driver_soname(name):
            self.sensitive.add(name)
        if found is not None and found.info.defines_versions(versions):
            self.edges.setdefault(node.path, set()).add(found.path)
            child = self.nodes.get(found.path)
            if (
                child is not None
                and child.path not in self.visited
                and child.loader is None
                and not child.is_main
            ):
                child.loader = node
                self.queue.append(child)
            if found.stage == "ld_library_path" and self._is_outside(node, found):
                self._check_outside(node, name, versions, dirs, found)
            return
        if found is not None or self.env_copies(name, node.info.arch_key, ()):
            self.lacking.setdefault(name, set()).update(versions)
        if found is not None and found.stage == "rpath":
            self.unresolved.setdefault(name, set()).add(node.path)
        else:
            self.missing.append((name, node.path, versions))

    def _is_outside(self, node: Node, found: Found) -> bool:
        """An env object given a copy from an ``LD_LIBRARY_PATH`` entry outside the env."""
        return inside(node.path, self.prefix) and not inside(found.directory, self.prefix)

    def _check_outside(
        self, node: Node, name: str, versions: tuple[str, ...], dirs: SearchDirs, found: Found
    ) -> None:
        """Record an override when the needer's RUNPATH, or else the env, holds a copy of its own (never
        for the driver's libraries: a copy in the env is a stub for building, not the driver)."""
        if is_driver_soname(name):
            return
        arch = node.info.arch_key
        own: Optional[str] = None
        for directory in dirs[1]:
            hit = self.res.in_dir(directory, name, arch) if inside(directory, self.prefix) else None
            if hit is not None and hit[1].defines_versions(versions):
                own = directory
                break
        if own is not None or self.env_copies(name, arch, versions):
            self.outside.append((name, node.path, found.path, own))

    def env_copies(self, name: str, arch: tuple[int, bool, int], versions: tuple[str, ...]) -> list[str]:
        """The env directories holding ``name`` for a needer of ``arch`` requiring ``versions``, in order."""
        if self._by_name is None:
            self._by_name = {}
            for directory, files in self.res.env_dirs.items():
                for file_name, (_path, info) in files.items():
                    if info is not None:
                        self._by_name.setdefault(file_name, []).append((directory, info))
        copies = (
            d
            for d, info in self._by_name.get(name, ())
            if info.arch_key == arch and info.defines_versions(versions)
        )
        return sorted(copies, key=lib_order(self.prefix))
