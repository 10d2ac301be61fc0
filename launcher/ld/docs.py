"""The analysis' work documents in a store (:mod:`launcher.ld.store`), made and checked here (the
``index`` of answers is :mod:`launcher.ld.answers`):

* ``walk``: each scanned directory's record (:class:`launcher.ld.walk.DirRec`);
* ``objects``: each file's signature and parsed dynamic section (:class:`launcher.ld.elfinfo.ElfInfo`).

A document is used only when its version and env prefix match; records that do not have the expected
shape are ignored one by one. The documents of an analysis pre-computed into an image are ``coarse``
(:mod:`launcher.ld.walk`; :func:`coarsened` makes them).
"""

from __future__ import annotations

from launcher.ld.answers import VERSION
from launcher.ld.elfinfo import ElfInfo
from launcher.ld.sigs import coarse_dir_sig, coarse_file_sig
from launcher.ld.walk import DirRec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional, TypedDict

    from launcher.ld.sigs import Sig
    from launcher.ld.walk import Walk

    class WalkDoc(TypedDict):
        v: int
        prefix: str
        coarse: bool
        dirs: dict[str, object]

    class ObjectsDoc(TypedDict):
        v: int
        prefix: str
        coarse: bool
        objects: dict[str, list[object]]


def _body(doc: object, prefix: str, field: str) -> Optional[tuple[dict[str, object], dict[str, object]]]:
    """(the document, its ``field`` dict) when ``doc`` is of this version and env, else ``None``."""
    if not isinstance(doc, dict) or doc.get("v") != VERSION or doc.get("prefix") != prefix:
        return None
    body = doc.get(field)
    return (doc, body) if isinstance(body, dict) else None


def _coarse(doc: dict[str, object]) -> bool:
    return doc.get("coarse") is True


def walk_doc(prefix: str, walk: Walk) -> WalkDoc:
    return {"v": VERSION, "prefix": prefix, "coarse": False, "dirs": walk.doc_dirs()}


def stored_dirs(doc: object, prefix: str) -> tuple[dict[str, DirRec], bool]:
    """(the directory records of a stored walk, whether they are coarse); empty when there is none."""
    found = _body(doc, prefix, "dirs")
    out: dict[str, DirRec] = {}
    for rel, data in found[1].items() if found else ():
        rec = DirRec.from_list(data)
        if rec is not None:
            out[rel] = rec
    return out, bool(found and _coarse(found[0]))


class Objects:
    """Parsed files by relative path, reusing a stored ``objects`` document where the file's signature
    matches; ``changed`` says whether the document must be written again."""

    def __init__(self, doc: object, prefix: str) -> None:
        found = _body(doc, prefix, "objects")
        self._old: dict[str, object] = found[1] if found else {}
        self._coarse = bool(found and _coarse(found[0]))
        self.entries: dict[str, tuple[Sig, object]] = {}
        self.changed = False

    def get(self, rel: str, sig: Sig) -> tuple[bool, Optional[ElfInfo]]:
        """(known, parsed object) for the file ``rel`` with the (fine) signature ``sig``."""
        old = self._old.get(rel)
        if (
            isinstance(old, list)
            and len(old) == 2
            and old[0] == (coarse_file_sig(sig) if self._coarse else sig)
        ):
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

    def finish(self, files: Mapping[str, Sig]) -> None:
        """Carry over the stored entries of ``files`` not needed this time but unchanged (an env's
        programs are parsed only when they are analysed); note entries of files that are gone."""
        for rel, sig in files.items():
            if rel not in self.entries:
                self.get(rel, sig)
        if self._old.keys() - self.entries.keys():
            self.changed = True

    def doc(self, prefix: str, *, coarse: bool = False) -> ObjectsDoc:
        objects = {
            rel: [coarse_file_sig(sig) if coarse else sig, info] for rel, (sig, info) in self.entries.items()
        }
        return {"v": VERSION, "prefix": prefix, "coarse": coarse, "objects": objects}


def coarsened(walk: object, objects: object, prefix: str, started: int) -> tuple[WalkDoc, ObjectsDoc]:
    """Fine ``walk`` and ``objects`` documents in the coarse form an analysis pre-computed into an image
    keeps (signatures that survive the unpacking of the image's layers). ``started``: the second the
    analysis began; a directory or file modified in that second or later might change again within the
    same second unnoticed, so its signature is made one that never matches (it is read again at launch)."""
    dirs, _coarse = stored_dirs(walk, prefix)
    coarse_dirs: dict[str, object] = {}
    for rel, rec in dirs.items():
        sig = coarse_dir_sig(rec.sig)
        coarse_dirs[rel] = [
            sig if sig[0] < started else [-1],
            rec.subdirs,
            rec.libs,
            rec.links,
            rec.progs,
            rec.pruned,
        ]
    found = _body(objects, prefix, "objects")
    coarse_objects: dict[str, list[object]] = {}
    for rel, entry in (found[1] if found else {}).items():
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list) and len(entry[0]) == 3:
            sig = coarse_file_sig(entry[0])
            coarse_objects[rel] = [sig if sig[1] < started else [sig[0], -1], entry[1]]
    return (
        {"v": VERSION, "prefix": prefix, "coarse": True, "dirs": coarse_dirs},
        {"v": VERSION, "prefix": prefix, "coarse": True, "objects": coarse_objects},
    )
