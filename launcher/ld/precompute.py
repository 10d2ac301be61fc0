"""Pre-computing an env's analysis while its image is built, so that the first boot of every job (a
fresh container, an empty ``~/.cache``) does not walk and parse the env again.

:func:`precompute` analyses the env as a whole (its programs too) afresh and returns, besides that
analysis, the ``walk`` and ``objects`` documents in their *coarse* form (signatures that survive the
unpacking of an image's layers). :func:`launcher.run.ldstore.save_precomputed` writes them into the env;
a launch reads them through its store and checks them directory by directory like any cached walk.
"""

from __future__ import annotations

from launcher.ld.analysis import analyze, question
from launcher.ld.docs import coarsened
from launcher.ld.store import MemoryStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from launcher.ld.result import LdAnalysis
    from launcher.ld.store import DocName


def precompute(
    prefix: str, program: Optional[str], environ: Mapping[str, str]
) -> tuple[LdAnalysis, dict[DocName, Mapping[str, object]]]:
    """(the whole-env analysis for ``program``, the documents to save into the env)."""
    import time

    started = int(time.time())
    store = MemoryStore()
    result = analyze(prefix, program, environ, store=store, reach=True)
    prefix = question(prefix, None, environ).prefix
    walk, objects = coarsened(store.read(prefix, "walk"), store.read(prefix, "objects"), prefix, started)
    return result, {"walk": walk, "objects": objects}
