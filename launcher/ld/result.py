"""The answer of the LD analysis as data: the directories to prepend (and why), the sonames nothing
provides, and their JSON-shaped form (for ``--json``, ``--ld-report --json`` and the cache). The wording
for people is in :mod:`launcher.ld.wording`."""

from __future__ import annotations

from launcher.core.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypedDict

    class AddedDoc(TypedDict):
        directory: str
        provides: list[list[str]]
        overrides: list[list[str]]
        shadows: list[str]

    class UnresolvedDoc(TypedDict):
        soname: str
        needers: list[str]
        versions: list[str]
        certain: bool

    class AnalysisDoc(TypedDict):
        added: list[AddedDoc]
        unresolved: list[UnresolvedDoc]
        objects_scanned: int
        from_cache: bool


class AddedDir(Record):
    """A directory to prepend. ``provides``: (soname, one object that needs it) for each soname the loader
    would miss; ``overrides``: (soname, an env object that needs it, the copy outside the env that
    ``LD_LIBRARY_PATH`` would give it instead of the env's); ``shadows``: the other sonames in it that the
    system provides too, which every program of the job (``ssh``, ``tmux``, ``sh``) then loads from it."""

    __slots__ = ("directory", "overrides", "provides", "shadows")

    def __init__(
        self,
        directory: str,
        provides: tuple[tuple[str, str], ...],
        overrides: tuple[tuple[str, str, str], ...] = (),
        shadows: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.provides = provides
        self.overrides = overrides
        self.shadows = shadows


class Unresolved(Record):
    """A soname the loader would not find and the env does not provide, once however many objects need
    it. ``versions``: the versions required of it that the copies found lack (empty when there is no copy
    at all). ``certain``: an object the program certainly loads needs it (the program, the env's Python,
    an importable extension module, or a library one of them needs); else only libraries the program may
    never load do (plugins, transports, tests)."""

    __slots__ = ("certain", "needers", "soname", "versions")

    def __init__(
        self, soname: str, needers: tuple[str, ...], versions: tuple[str, ...] = (), certain: bool = True
    ) -> None:
        self.soname = soname
        self.needers = needers
        self.versions = versions
        self.certain = certain


class LdAnalysis(Record):
    """The result of :func:`launcher.ld.analysis.analyze`: directories to prepend, in order, and what
    stays unresolved."""

    __slots__ = ("added", "from_cache", "objects_scanned", "unresolved")

    def __init__(
        self,
        added: tuple[AddedDir, ...],
        unresolved: tuple[Unresolved, ...],
        objects_scanned: int,
        from_cache: bool,
    ) -> None:
        self.added = added
        self.unresolved = unresolved
        self.objects_scanned = objects_scanned
        self.from_cache = from_cache

    @property
    def directories(self) -> tuple[str, ...]:
        """The directories to prepend to LD_LIBRARY_PATH, in order."""
        return tuple(a.directory for a in self.added)

    def notes(self) -> list[str]:
        """What the launch says about LD_LIBRARY_PATH (its decisions, not warnings)."""
        from launcher.ld.wording import notes

        return notes(self)

    def details(self) -> list[str]:
        """What ``-v`` adds to :meth:`notes`: every soname and library the notes only count."""
        from launcher.ld.wording import details

        return details(self)

    def warnings(self) -> list[str]:
        """One warning per soname that an object the program certainly loads needs and nothing provides
        (the driver's libraries aside)."""
        from launcher.ld.wording import warnings

        return warnings(self)

    def report(self) -> list[str]:
        """Everything, for ``--ld-report``."""
        from launcher.ld.wording import report_lines

        return report_lines(self)

    def to_json(self) -> AnalysisDoc:
        """A JSON-shaped dict; :meth:`from_json` reverses it."""
        return {
            "added": [
                {
                    "directory": a.directory,
                    "provides": [list(p) for p in a.provides],
                    "overrides": [list(o) for o in a.overrides],
                    "shadows": list(a.shadows),
                }
                for a in self.added
            ],
            "unresolved": [
                {
                    "soname": u.soname,
                    "needers": list(u.needers),
                    "versions": list(u.versions),
                    "certain": u.certain,
                }
                for u in self.unresolved
            ],
            "objects_scanned": self.objects_scanned,
            "from_cache": self.from_cache,
        }

    @classmethod
    def from_json(cls, data: object, *, from_cache: bool = False) -> LdAnalysis:
        """Rebuild from :meth:`to_json`; raises ``ValueError`` when ``data`` is not of that shape."""
        if not isinstance(data, dict):
            raise ValueError("not an analysis")
        added = tuple(_added(a) for a in _list(data.get("added")))
        unresolved = tuple(_unresolved(u) for u in _list(data.get("unresolved")))
        scanned = data.get("objects_scanned")
        if type(scanned) is not int:
            raise ValueError("not an analysis")
        return cls(added, unresolved, scanned, from_cache)


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _strs(value: object, size: int = 0) -> tuple[str, ...]:
    items = _list(value)
    if not all(isinstance(i, str) for i in items) or (size and len(items) != size):
        raise ValueError("not a list of strings")
    return tuple(str(i) for i in items)


def _pair(value: object) -> tuple[str, str]:
    a, b = _strs(value, 2)
    return a, b


def _triple(value: object) -> tuple[str, str, str]:
    a, b, c = _strs(value, 3)
    return a, b, c


def _added(value: object) -> AddedDir:
    if not isinstance(value, dict) or not isinstance(value.get("directory"), str):
        raise ValueError("not an added directory")
    provides = tuple(_pair(p) for p in _list(value.get("provides")))
    overrides = tuple(_triple(o) for o in _list(value.get("overrides")))
    return AddedDir(str(value["directory"]), provides, overrides, _strs(value.get("shadows")))


def _unresolved(value: object) -> Unresolved:
    if not isinstance(value, dict) or not isinstance(value.get("soname"), str):
        raise ValueError("not an unresolved soname")
    certain = value.get("certain")
    if not isinstance(certain, bool):
        raise ValueError("not an unresolved soname")
    needers, versions = _strs(value.get("needers")), _strs(value.get("versions"))
    return Unresolved(str(value["soname"]), needers, versions, certain)
