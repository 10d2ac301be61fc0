"""A fresh answer, when no stored one holds: walk the env (reusing a stored walk where its directories are
unchanged), parse the files that are new or changed (reusing stored ones), link everything as the loader
would (:mod:`launcher.ld.link`, :mod:`launcher.ld.choose`), and keep the work in the store."""

from __future__ import annotations

import os

from launcher.ld.answers import answer_doc, index_doc
from launcher.ld.choose import decide
from launcher.ld.docs import Objects, stored_dirs, walk_doc
from launcher.ld.elf import read_elf
from launcher.ld.link import Linker, Roots
from launcher.ld.walk import Walk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional

    from launcher.ld.analysis import Question
    from launcher.ld.elfinfo import ElfInfo
    from launcher.ld.result import LdAnalysis
    from launcher.ld.search import DirTable
    from launcher.ld.store import LdStore


def fresh_answer(q: Question, store: LdStore, log: Callable[[str], None], *, use_store: bool) -> LdAnalysis:
    """Analyse afresh (with the stored walk and objects unless ``use_store`` is false); keep the walk, the
    objects and the answer in ``store``."""
    old, coarse = stored_dirs(store.read(q.prefix, "walk"), q.prefix) if use_store else ({}, False)
    walk = Walk(q.prefix, old, coarse=coarse)
    objects = Objects(store.read(q.prefix, "objects") if use_store and walk.files else None, q.prefix)
    result, sensitive = _link(q, walk, objects)
    if walk.changed and not store.write(q.prefix, "walk", walk_doc(q.prefix, walk)):
        log(f"could not keep the analysis of {q.prefix}; the next launch scans again")
    objects.finish(walk.files)
    if objects.changed:
        store.write(q.prefix, "objects", objects.doc(q.prefix))
    sigs = {rel: rec.sig for rel, rec in walk.dirs.items()}
    answer = answer_doc(q.key(), q.ld_path, sensitive, result)
    # Other questions' answers are kept only when no file had to be read again: they hold for this walk.
    old_index = store.read(q.prefix, "index") if use_store and not objects.changed else None
    store.write(q.prefix, "index", index_doc(q.prefix, old_index, sigs, answer))
    return result


class _Parsed:
    """The parsed files of a walk: from the stored objects where valid, a symlink as its target."""

    def __init__(self, walk: Walk, objects: Objects) -> None:
        self._walk = walk
        self._objects = objects
        self._links = {
            (f"{rel}/{name}" if rel else name): target
            for rel, rec in walk.dirs.items()
            for name, target in rec.links.items()
            if target
        }
        self.infos: dict[str, Optional[ElfInfo]] = {}

    def is_alias(self, rel: str) -> bool:
        """Whether ``rel`` is a symlink to another file of the walk (the file counts once)."""
        target = self._links.get(rel)
        return target is not None and target != rel and target in self._walk.files

    def get(self, rel: str, depth: int = 0) -> Optional[ElfInfo]:
        if rel in self.infos:
            return self.infos[rel]
        if self.is_alias(rel) and depth < 8:
            info = self.get(self._links[rel], depth + 1)
        else:
            sig = self._walk.files[rel]
            known, info = self._objects.get(rel, sig)
            if not known:
                info = read_elf(os.path.join(self._walk.prefix, rel))
                self._objects.put(rel, sig, info)
        self.infos[rel] = info
        return info


def _link(q: Question, walk: Walk, objects: Objects) -> tuple[LdAnalysis, set[str]]:
    """Build the env's table of libraries from the walk, then link everything; returns the answer and
    its sensitive sonames (see :mod:`launcher.ld.answers`)."""
    parsed = _Parsed(walk, objects)
    table: DirTable = {}
    env_libs: list[str] = []
    programs: dict[str, Optional[ElfInfo]] = {}
    for rel, rec in walk.dirs.items():
        directory = f"{q.prefix}/{rel}" if rel else q.prefix
        base = f"{rel}/" if rel else ""
        files: dict[str, tuple[str, Optional[ElfInfo]]] = {}
        for name in rec.libs:
            files[name] = (f"{directory}/{name}", parsed.get(base + name))
            if not parsed.is_alias(base + name):
                env_libs.append(f"{directory}/{name}")
        table[directory] = files
        if q.reach:
            for name in rec.progs:
                programs[f"{directory}/{name}"] = parsed.get(base + name)
    others = [*q.others, *(p for p in programs if p not in q.others)]
    roots = Roots(q.main, q.python, others)
    facts = Linker(q.prefix, table, q.ld_path, roots, programs).link(sorted(env_libs))
    result = decide(facts)
    sensitive = set(facts.sensitive)
    for added in result.added:
        sensitive.update(table.get(added.directory, {}))  # what it shadows depends on LD_LIBRARY_PATH
    return result, sensitive
