"""Where the LD analysis keeps its work between launches: a store of named documents per env.

The analysis (:func:`launcher.ld.analysis.analyze`) reads and writes three JSON-shaped documents per env
prefix - ``index`` (the last answers, with the signature of every scanned directory), ``walk`` (each
directory's listing) and ``objects`` (the parsed dynamic section of each file) - through a store it is
given. A store may also hold a read-only layer under the caller's own documents (the analysis an image
build pre-computed): :meth:`LdStore.layers`. It never touches a cache file itself: the store on disk is
:class:`launcher.run.ldstore.DiskStore` (the only code that writes files is in ``launcher.run``); tests
and ``doctor`` pass a :class:`MemoryStore` or :class:`NullStore`.

A document is JSON-shaped: dicts with string keys, lists, strings, integers, booleans and ``None``.
Whatever a store returns is checked by the reader before use (a document may be stale, forged or from
another version): :meth:`LdStore.read` returns ``object``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Literal

    #: The documents the analysis keeps per env.
    DocName = Literal["index", "walk", "objects"]

DOC_NAMES: tuple[DocName, ...] = ("index", "walk", "objects")


class LdStore:
    """The interface: read and write a named document of an env. The base class stores nothing."""

    def read(self, prefix: str, name: DocName) -> object:
        """The document ``name`` of the env ``prefix``, or ``None`` when there is none (or it is not
        trusted). Never raises."""
        return None

    def write(self, prefix: str, name: DocName, doc: Mapping[str, object]) -> bool:
        """Keep ``doc`` as ``name`` of the env ``prefix``; ``False`` when that was not possible. Never
        raises."""
        return False

    def layers(self, prefix: str, name: DocName) -> Iterator[object]:
        """Every document ``name`` of the env, the caller's own first, read as they are asked for."""
        yield self.read(prefix, name)


class NullStore(LdStore):
    """No cache: every analysis starts afresh and nothing is kept."""


class MemoryStore(LdStore):
    """Documents kept in memory (for tests and one-off analyses); each document is copied in and out,
    so the caller cannot change what is stored. ``writes`` lists every write, in order."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], bytes] = {}
        self.writes: list[tuple[str, str]] = []

    def read(self, prefix: str, name: DocName) -> object:
        import marshal

        raw = self.docs.get((prefix, name))
        return None if raw is None else marshal.loads(raw)  # noqa: S302 - bytes this object made

    def write(self, prefix: str, name: DocName, doc: Mapping[str, object]) -> bool:
        import marshal

        self.docs[(prefix, name)] = marshal.dumps(dict(doc))
        self.writes.append((prefix, name))
        return True
