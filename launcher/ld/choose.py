"""Deciding on the facts a :class:`launcher.ld.link.Linker` gathered: which env directories to prepend,
and what stays unresolved.

* Each missing soname gets the env directory holding a copy (of the needer's class and machine, with the
  versions it requires, under that file name: the loader searches ``LD_LIBRARY_PATH`` by file name), one
  already chosen if it holds one, else the first in order (``prefix/lib``, ``prefix/lib64``, then by name).
* Each overridden soname gets the needer's own RUNPATH directory, else an env directory as above: put in
  front of ``LD_LIBRARY_PATH``, it comes before the outside copy.
* The choice is checked as the loader will see it, with the chosen directories in front of
  ``LD_LIBRARY_PATH``: a fix that an earlier directory shadows, or that a needer's RPATH overrides, stays
  unresolved; an override that does not take effect is dropped.
* An unresolved soname is *certain* when an object the program certainly loads needs it.
* Each chosen directory is told what it shadows: the sonames in it that the system provides as well
  (``ld.so.cache``, the default directories, ``LD_LIBRARY_PATH`` entries outside the env), which every
  program of the job then loads from the env.
"""

from __future__ import annotations

import os

from launcher.ld.link import lib_order
from launcher.ld.result import AddedDir, LdAnalysis, Unresolved
from launcher.ld.sysdirs import inside, system_lib_dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from launcher.ld.link import Linker


class Chosen:
    """What one chosen directory is for: (soname, needer) it provides, (soname, needer, outside copy) it
    overrides."""

    __slots__ = ("overrides", "provides")

    def __init__(self) -> None:
        self.provides: list[tuple[str, str]] = []
        self.overrides: list[tuple[str, str, str]] = []


def decide(facts: Linker) -> LdAnalysis:
    """The analysis for a linked env."""
    chosen = _choose(facts)
    _check(facts, chosen)
    certain = _certain(facts)
    order = lib_order(facts.prefix)
    system = _system_names(facts) if chosen else set()
    added = tuple(
        AddedDir(d, tuple(sorted(c.provides)), tuple(sorted(c.overrides)), _shadows(facts, d, c, system))
        for d, c in sorted(chosen.items(), key=lambda item: order(item[0]))
    )
    items = tuple(
        Unresolved(
            name,
            tuple(sorted(needers)),
            tuple(sorted(facts.lacking.get(name, ()))),
            any(n in certain for n in needers),
        )
        for name, needers in sorted(facts.unresolved.items())
    )
    return LdAnalysis(added, items, len(facts.visited), False)


def _choose(facts: Linker) -> dict[str, Chosen]:
    chosen: dict[str, Chosen] = {}
    for name, needer, versions in sorted(facts.missing):
        candidates = facts.env_copies(name, facts.nodes[needer].info.arch_key, versions)
        if not candidates:
            facts.unresolved.setdefault(name, set()).add(needer)
            continue
        pick = next((d for d in chosen if d in candidates), candidates[0])
        entry = chosen.setdefault(pick, Chosen())
        if all(s != name for s, _n in entry.provides):
            entry.provides.append((name, needer))
    for name, needer, outside, own in sorted(facts.outside, key=lambda o: o[:3]):
        info = facts.nodes[needer].info
        candidates = [own] if own else facts.env_copies(name, info.arch_key, info.versions_needed_from(name))
        pick = own or next((d for d in chosen if d in candidates), candidates[0])
        entry = chosen.setdefault(pick, Chosen())
        if all(s != name for s, _n, _o in entry.overrides):
            entry.overrides.append((name, needer, outside))
    return chosen


def _check(facts: Linker, chosen: dict[str, Chosen]) -> None:
    """Search again with the chosen directories first: what the loader still misses stays unresolved; an
    override that does not take effect is dropped (with its directory, if that was all it was for)."""
    new_path = [*sorted(chosen, key=lib_order(facts.prefix)), *facts.ld_path]
    provided = {name for entry in chosen.values() for name, _n in entry.provides}
    for name, needer, versions in sorted(facts.missing):
        if name not in provided:
            continue
        found = facts.res.find(name, facts.nodes[needer], facts.contexts[needer], new_path)
        if found is None or not found.info.defines_versions(versions):
            facts.unresolved.setdefault(name, set()).add(needer)
        else:
            facts.edges.setdefault(needer, set()).add(found.path)
    for directory, entry in list(chosen.items()):
        entry.overrides = [o for o in entry.overrides if _takes_effect(facts, o, new_path)]
        if not entry.provides and not entry.overrides:
            del chosen[directory]


def _takes_effect(facts: Linker, override: tuple[str, str, str], new_path: list[str]) -> bool:
    name, needer, _outside = override
    found = facts.res.find(name, facts.nodes[needer], facts.contexts[needer], new_path)
    return found is not None and inside(found.directory, facts.prefix)


def _certain(facts: Linker) -> set[str]:
    """Every object the program certainly loads: the certain roots and what they load, transitively."""
    seen: set[str] = set()
    todo = list(facts.certain_roots)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(facts.edges.get(path, ()))
    return seen


def _system_names(facts: Linker) -> set[str]:
    """The sonames the system provides: ``ld.so.cache``, the default directories and the
    ``LD_LIBRARY_PATH`` entries outside the env."""
    names = set(facts.res.ld_cache())
    for directory in [*system_lib_dirs(), *(p for p in facts.ld_path if not inside(p, facts.prefix))]:
        try:
            names.update(n for n in os.listdir(directory) if ".so." in n)
        except OSError:
            continue
    return names


def _shadows(facts: Linker, directory: str, chosen: Chosen, system: set[str]) -> tuple[str, ...]:
    """The ELF objects in ``directory`` whose names the system provides as well (but those it overrides:
    that is what it is for)."""
    skip = {o[0] for o in chosen.overrides}
    table = facts.res.env_dirs.get(directory, {})
    return tuple(
        sorted(n for n, (_p, info) in table.items() if info is not None and n in system and n not in skip)
    )
