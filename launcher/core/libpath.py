"""The LD_LIBRARY_PATH step of a plan: ``auto`` (exactly the env directories that provide what the loader
would miss), ``prefix`` (the env's ``lib`` first, the documented blanket fix) or ``off``.

Existing entries are kept and empty ones dropped; the value before the launch is kept in
``MA_LAUNCH_ORIG_LD_LIBRARY_PATH`` (unless that is already set, as in a nested launch).
"""

from __future__ import annotations

import os

from launcher.core import paths
from launcher.core.plan import LdDecision

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

    from launcher.core.plan import EnvBuilder
    from launcher.ld.store import LdStore
    from launcher.modes import LdMode

ORIGINAL = "MA_LAUNCH_ORIG_LD_LIBRARY_PATH"


def apply_ld(
    mode: LdMode,
    prefix: Optional[str],
    program: Optional[str],
    base: Mapping[str, str],
    builder: EnvBuilder,
    store: LdStore,
) -> LdDecision:
    """Change LD_LIBRARY_PATH in ``builder`` for ``mode`` and say why.

    ``auto`` adds exactly the env directories that provide what the loader would not find, or that an
    inherited LD_LIBRARY_PATH would shadow (:mod:`launcher.ld.analysis`; its work is kept in ``store``).
    """
    if mode == "off":
        return LdDecision(mode, reasons=("LD_LIBRARY_PATH left as it is (--ld-library-path off)",))
    if prefix is None:
        return LdDecision(mode, reasons=("LD_LIBRARY_PATH left as it is (no env)",))
    if mode == "auto":
        return _auto(prefix, program, base, builder, store)
    added = (os.path.join(prefix, "lib"),)
    reason = f"LD_LIBRARY_PATH: {added[0]} first (--ld-library-path prefix, the documented fix)"
    prepend(added, base, builder, "--ld-library-path prefix")
    return LdDecision(mode, added=added, reasons=(reason,))


def _auto(
    prefix: str, program: Optional[str], base: Mapping[str, str], builder: EnvBuilder, store: LdStore
) -> LdDecision:
    from launcher.ld.analysis import analyze

    analysis = analyze(prefix, program, builder.env, store=store)
    prepend(analysis.directories, base, builder, "--ld-library-path auto")
    return LdDecision(
        "auto",
        added=tuple(analysis.directories),
        reasons=tuple(analysis.notes()),
        warnings=tuple(analysis.warnings()),
        analysis=analysis.to_json(),
        details=tuple(analysis.details()),
    )


def prepend(added: Sequence[str], base: Mapping[str, str], builder: EnvBuilder, source: str) -> None:
    """Put ``added`` in front of LD_LIBRARY_PATH (no duplicates, no empty entries), recording the original
    value the first time."""
    if not added:
        return
    current = builder.env.get("LD_LIBRARY_PATH")
    new = paths.prepend_entries(current, added)
    if new == current:
        return
    if ORIGINAL not in base:
        builder.set(ORIGINAL, base.get("LD_LIBRARY_PATH", ""), "the value before ma-launch", "ld")
    builder.set("LD_LIBRARY_PATH", new, source, "ld")
