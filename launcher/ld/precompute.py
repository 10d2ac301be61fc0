"""Pre-computing an env's analysis while its image is built, so that the first launch of every job (a
fresh container, an empty ``~/.cache``) does not walk, parse and link the env again.

:func:`precompute` analyses the env as a whole (its executables too) for the report, then answers the
questions boot lines usually ask - the env's Python, ``bash`` (``-c`` lines, scripts) and ``sh`` - and
returns the ``index``, ``walk`` and ``objects`` documents in their *coarse* form (signatures that survive
the unpacking of image layers). :func:`launcher.run.ldstore.save_precomputed` writes them into the env; a
launch reads them through its store and checks them like its own cache (:mod:`launcher.ld.answers`).
"""

from __future__ import annotations

from launcher.core.paths import search_path
from launcher.ld.analysis import analyze, question
from launcher.ld.answers import coarse_index
from launcher.ld.docs import coarsened
from launcher.ld.store import MemoryStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from launcher.ld.result import LdAnalysis
    from launcher.ld.store import DocName

#: The programs boot lines usually start, besides the env's Python.
_LAUNCHED = ("bash", "sh")


def precompute(
    prefix: str, program: Optional[str], environ: Mapping[str, str]
) -> tuple[LdAnalysis, dict[DocName, Mapping[str, object]]]:
    """(the whole-env analysis for ``program``, the documents to save into the env)."""
    import time

    started = int(time.time())
    store = MemoryStore()
    report = analyze(prefix, program, environ, store=store, reach=True)
    launched = [None, *(search_path(name, environ.get("PATH")) for name in _LAUNCHED)]  # None: Python
    questions = []
    for path in dict.fromkeys(launched):
        analyze(prefix, path, environ, store=store)
        q = question(prefix, path, environ)
        questions.append((q.key(), q.key(coarse=True), q.ld_path))
    prefix = question(prefix, None, environ).prefix
    walk, objects = coarsened(store.read(prefix, "walk"), store.read(prefix, "objects"), prefix, started)
    index = coarse_index(store.read(prefix, "index"), walk["dirs"], prefix, questions)
    return report, {"index": index, "walk": walk, "objects": objects}
