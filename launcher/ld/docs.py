"""The analysis' documents in a store (:mod:`launcher.ld.store`), made and checked here.

* ``index``: the last question (everything outside the env's files that the answer depends on, as a key),
  the signature of every scanned directory and the answer - the fast path of a repeated launch;
* ``walk``: each scanned directory's record (:class:`launcher.ld.walk.DirRec`);
* ``objects``: each file's signature and parsed dynamic section (:class:`launcher.ld.elfinfo.ElfInfo`).

A document is used only when its version and env prefix match; records that do not have the expected
shape are ignored one by one; an answer whose prepended directories do not all lie inside the env is
ignored as a whole (a forged cache must not put a directory of its choosing on ``LD_LIBRARY_PATH``).
"""

from __future__ import annotations

import os

from launcher.ld.elfinfo import ElfInfo
from launcher.ld.result import LdAnalysis
from launcher.ld.search import inside
from launcher.ld.walk import DirRec, unchanged

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, TypedDict

    from launcher.ld.result import AnalysisDoc
    from launcher.ld.walk import Sig, Walk

    class IndexDoc(TypedDict):
        v: int
        prefix: str
        key: list[object]
        sigs: dict[str, Sig]
        result: AnalysisDoc

    class WalkDoc(TypedDict):
        v: int
        prefix: str
        dirs: dict[str, object]

    class ObjectsDoc(TypedDict):
        v: int
        prefix: str
        objects: dict[str, list[object]]


VERSION = 3


def _body(doc: object, prefix: str, field: str) -> Optional[tuple[dict[str, object], dict[str, object]]]:
    """(the document, its ``field`` dict) when ``doc`` is of this version and env, else ``None``."""
    if not isinstance(doc, dict) or doc.get("v") != VERSION or doc.get("prefix") != prefix:
        return None
    body = doc.get(field)
    return (doc, body) if isinstance(body, dict) else None


def index_doc(prefix: str, key: list[object], walk: Walk, result: LdAnalysis) -> IndexDoc:
    """The fast-path document for this question and answer."""
    sigs = {rel: rec.sig for rel, rec in walk.dirs.items()}
    return {"v": VERSION, "prefix": prefix, "key": key, "sigs": sigs, "result": result.to_json()}


def cached_result(doc: object, prefix: str, key: list[object]) -> Optional[LdAnalysis]:
    """The stored answer, if it answers the same question, no scanned directory changed, and every
    directory it prepends lies inside the env; else ``None``."""
    found = _body(doc, prefix, "sigs")
    if found is None or found[0].get("key") != key or not unchanged(prefix, found[1]):
        return None
    try:
        result = LdAnalysis.from_json(found[0].get("result"), from_cache=True)
    except ValueError:
        return None
    if not all(os.path.normpath(d) == d and inside(d, prefix) for d in result.directories):
        return None
    return result


def walk_doc(prefix: str, walk: Walk) -> WalkDoc:
    return {"v": VERSION, "prefix": prefix, "dirs": walk.doc_dirs()}


def stored_dirs(doc: object, prefix: str) -> dict[str, DirRec]:
    """The directory records of a stored walk; empty when there is none."""
    found = _body(doc, prefix, "dirs")
    out: dict[str, DirRec] = {}
    for rel, data in found[1].items() if found else ():
        rec = DirRec.from_list(data)
        if rec is not None:
            out[rel] = rec
    return out


class Objects:
    """Parsed files by relative path, reusing a stored ``objects`` document where the file's signature
    matches; ``changed`` says whether the document must be written again."""

    def __init__(self, doc: object, prefix: str) -> None:
        found = _body(doc, prefix, "objects")
        self._old: dict[str, object] = found[1] if found else {}
        self.entries: dict[str, tuple[Sig, object]] = {}
        self.changed = False

    def get(self, rel: str, sig: Sig) -> tuple[bool, Optional[ElfInfo]]:
        """(known, parsed object) for the file ``rel`` with the signature ``sig``."""
        old = self._old.get(rel)
        if isinstance(old, list) and len(old) == 2 and old[0] == sig:
            try:
                info = None if old[1] is None else ElfInfo.from_list(old[1])
            except ValueError:
                return False, None
            self.entries[rel] = (sig, old[1])
            return True, info
        return False, None

    def put(self, rel: str, sig: Sig, info: Optional[ElfInfo]) -> None:
        """Record a freshly parsed file."""
        self.entries[rel] = (sig, None if info is None else info.to_list())
        self.changed = True

    def finish(self) -> None:
        """Note stored entries of files that are gone (the document is then written again)."""
        if self._old.keys() - self.entries.keys():
            self.changed = True

    def doc(self, prefix: str) -> ObjectsDoc:
        objects = {rel: [sig, info] for rel, (sig, info) in self.entries.items()}
        return {"v": VERSION, "prefix": prefix, "objects": objects}
