"""The fast path: answers to earlier questions, kept in the ``index`` document, and when they still hold.

An answer holds when the env's scanned directories still have their signatures, the question's key is
the same (the env, the program and the Python that loads extension modules, whether the env's executables
were checked, and the signatures of those programs, of ``ld.so.cache`` and of the default directories),
and ``LD_LIBRARY_PATH`` still gives the same sonames from the same directories. Only the *sensitive*
sonames matter there: those some lookup searched ``LD_LIBRARY_PATH`` for (an RPATH hit stops the search
before it) but the driver's (the platform mounts it, and it is never an env directory to add), and the
names in the directories the answer prepends (what they shadow depends on it). So an
answer made without the platform's ``LD_LIBRARY_PATH`` (at image build) still holds at boot when the
platform's directories hold none of them: checking costs one listing per entry.

The index keeps the last few answers for one walk of the env. Its ``coarse`` form, pre-computed into an
image, compares signatures that survive the unpacking of image layers (:mod:`launcher.ld.walk`).
An answer that prepends a directory outside the env is never used (a forged cache must not put a
directory of its choosing on ``LD_LIBRARY_PATH``).
"""

from __future__ import annotations

import os

from launcher.ld.result import LdAnalysis
from launcher.ld.sigs import path_sig, unchanged
from launcher.ld.sysdirs import inside

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Optional, TypedDict

    from launcher.ld.result import AnalysisDoc
    from launcher.ld.sigs import Sig

    class AnswerDoc(TypedDict):
        key: list[object]
        ld: list[list[object]]
        sensitive: list[str]
        result: AnalysisDoc

    class IndexDoc(TypedDict):
        v: int
        prefix: str
        coarse: bool
        sigs: dict[str, Sig]
        answers: list[object]  # AnswerDoc, checked when read


VERSION = 3
_KEPT = 4


def ld_view(ld_path: Sequence[str], sensitive: Iterable[str], coarse: bool) -> list[list[object]]:
    """For each ``LD_LIBRARY_PATH`` entry holding a sensitive soname: [entry, its signature, those names]."""
    names = set(sensitive)
    out: list[list[object]] = []
    for entry in ld_path:
        try:
            hits = sorted(names.intersection(os.listdir(entry)))
        except (OSError, ValueError):
            continue
        if hits:
            out.append([entry, path_sig(entry, coarse), hits])
    return out


def answer_doc(
    key: list[object], ld_path: Sequence[str], sensitive: set[str], result: LdAnalysis
) -> AnswerDoc:
    """One answer as the index keeps it."""
    return {
        "key": key,
        "ld": ld_view(ld_path, sensitive, False),
        "sensitive": sorted(sensitive),
        "result": result.to_json(),
    }


def index_doc(
    prefix: str, old: object, sigs: dict[str, Sig], answer: AnswerDoc, *, coarse: bool = False
) -> IndexDoc:
    """The index with ``answer`` first, keeping the other answers of ``old`` made on the same walk."""
    kept: list[object] = [answer]
    same_walk = (
        isinstance(old, dict)
        and (old.get("v"), old.get("prefix"), old.get("coarse"), old.get("sigs"))
        == (VERSION, prefix, coarse, sigs)
        and isinstance(old.get("answers"), list)
    )
    if same_walk and isinstance(old, dict):
        kept += [a for a in old["answers"] if isinstance(a, dict) and a.get("key") != answer["key"]]
    return {"v": VERSION, "prefix": prefix, "coarse": coarse, "sigs": sigs, "answers": kept[:_KEPT]}


def find_answer(
    doc: object, prefix: str, ld_path: Sequence[str], key_of: Callable[[bool], list[object]]
) -> Optional[LdAnalysis]:
    """The answer in ``doc`` that still holds for this question (``key_of(coarse)`` makes its key), or
    ``None``."""
    if not isinstance(doc, dict) or doc.get("v") != VERSION or doc.get("prefix") != prefix:
        return None
    coarse, sigs, answers = doc.get("coarse") is True, doc.get("sigs"), doc.get("answers")
    if not isinstance(sigs, dict) or not isinstance(answers, list) or not unchanged(prefix, sigs, coarse):
        return None
    key = key_of(coarse)
    for answer in answers:
        if not isinstance(answer, dict) or answer.get("key") != key:
            continue
        sensitive = answer.get("sensitive")
        if not isinstance(sensitive, list) or answer.get("ld") != ld_view(ld_path, sensitive, coarse):
            return None
        try:
            result = LdAnalysis.from_json(answer.get("result"), from_cache=True)
        except ValueError:
            return None
        if all(os.path.normpath(d) == d and inside(d, prefix) for d in result.directories):
            return result
        return None
    return None


def coarse_index(
    fine: object,
    dirs: dict[str, object],
    prefix: str,
    questions: Sequence[tuple[list[object], list[object], Sequence[str]]],
) -> IndexDoc:
    """The index an image keeps: for each question (its fine key, its coarse key, its ``LD_LIBRARY_PATH``
    entries), the answer of the ``fine`` index, with coarse signatures; ``dirs``: a coarse walk's records."""
    answers = fine.get("answers") if isinstance(fine, dict) else None
    kept: list[object] = []
    for fine_key, coarse_key, ld_path in questions:
        for answer in answers if isinstance(answers, list) else ():
            if isinstance(answer, dict) and answer.get("key") == fine_key:
                sensitive = answer.get("sensitive")
                names = [n for n in sensitive if isinstance(n, str)] if isinstance(sensitive, list) else []
                ld = ld_view(ld_path, names, True)
                kept.append({"key": coarse_key, "ld": ld, "sensitive": names, "result": answer.get("result")})
    sigs: dict[str, Sig] = {}
    for rel, record in dirs.items():
        if isinstance(record, list) and record and isinstance(record[0], list):
            sigs[rel] = record[0]
    return {"v": VERSION, "prefix": prefix, "coarse": True, "sigs": sigs, "answers": kept}
