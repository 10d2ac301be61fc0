"""The architecture as rules on imports, checked by walking every module's syntax tree (lazy imports
inside functions included).

- ``core``, ``ld``, ``modelarts`` and ``render`` decide and show; they never import ``run`` (the only code
  with side effects), ``cli``, ``image``, ``typer`` or ``subprocess``.
- The supervisor stays resident for the whole job: its modules (:data:`SUPERVISOR`) import the
  standard library, each other and a few small modules that are standard library only themselves
  (:data:`SUPERVISOR_MAY_USE`: the error vocabulary and the masking rule it applies, ``Record``, the
  platform's fixed values and restart counts), and nothing else.
- Nothing imports ``cli`` but ``python -m launcher``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from launchkit import REPO

PACKAGE = REPO / "launcher"
PURE = ("core", "ld", "modelarts", "render")
FORBIDDEN_IN_PURE = ("launcher.run", "launcher.cli", "launcher.image", "typer", "subprocess")


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def imports_of(path: Path) -> set[str]:
    """Every module name imported anywhere in the file (``from a import b`` gives ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


ALL = dict(modules())


def test_the_walk_sees_the_package() -> None:
    assert {"launcher.core.build", "launcher.run.supervise", "launcher.cli.main"} <= set(ALL)
    assert "subprocess" in imports_of(ALL["launcher.run.activate"])  # a lazy import is seen too


@pytest.mark.parametrize("module", sorted(m for m in ALL if m.split(".")[1:2] and m.split(".")[1] in PURE))
def test_pure_layers_have_no_side_effect_imports(module: str) -> None:
    bad = sorted(n for n in imports_of(ALL[module]) if any(under(n, f) for f in FORBIDDEN_IN_PURE))
    assert not bad, f"{module} imports {bad}"


SUPERVISOR = (
    "launcher.run.supervise",
    "launcher.run.fork",
    "launcher.run.signals",
    "launcher.run.proctree",
    "launcher.run.outcome",
    "launcher.run.handoff",
    "launcher.run.memcg",
    "launcher.run.devholders",
    "launcher.run.verdict",
    "launcher.run.watch",
    "launcher.run.report",
    "launcher.run.loaderfix",
    "launcher.run.files",
)
#: What the supervisor may import from the package besides its own modules (standard library only too).
SUPERVISOR_MAY_USE = (
    "launcher.errors",
    "launcher.render.mask",
    "launcher.core.record",
    "launcher.modelarts.facts",
    "launcher.modelarts.restarts",
)
#: Packages whose ``__init__`` the supervisor's imports load: they must stay empty.
EMPTY_PACKAGES = ("launcher.run", "launcher.core", "launcher.modelarts", "launcher.render")


def _outside(names: set[str], allowed: tuple[str, ...]) -> list[str]:
    """The imported names that are neither standard library nor under one of ``allowed``."""
    return sorted(
        n
        for n in names
        if n.split(".")[0] not in sys.stdlib_module_names and not any(under(n, a) for a in allowed)
    )


@pytest.mark.parametrize("module", SUPERVISOR)
def test_supervisor_imports_only_the_standard_library(module: str) -> None:
    assert "launcher.errors.LaunchError" in imports_of(ALL["launcher.run.supervise"])
    # ``from launcher.run import x`` also names the package: its __init__ must stay empty.
    assert all(ALL[package].read_text() == "" for package in EMPTY_PACKAGES)
    bad = _outside(imports_of(ALL[module]) - set(EMPTY_PACKAGES), (*SUPERVISOR_MAY_USE, *SUPERVISOR))
    assert not bad, f"{module} (part of the supervisor) imports {bad}"


@pytest.mark.parametrize("module", SUPERVISOR_MAY_USE)
def test_what_the_supervisor_uses_is_standard_library_only(module: str) -> None:
    assert _outside(imports_of(ALL[module]), SUPERVISOR_MAY_USE) == []


def test_the_masking_rule_imports_nothing_at_all() -> None:
    mask = imports_of(ALL["launcher.render.mask"])
    assert mask <= {
        "__future__",
        "__future__.annotations",
        "collections.abc",
        "collections.abc.Iterable",
        "collections.abc.Mapping",
        "collections.abc.Sequence",
        "typing",
        "typing.Optional",
    }, mask


@pytest.mark.parametrize("module", sorted(ALL))
def test_nothing_imports_the_cli(module: str) -> None:
    if under(module, "launcher.cli") or module == "launcher.__main__":
        return
    bad = sorted(n for n in imports_of(ALL[module]) if under(n, "launcher.cli"))
    assert not bad, f"{module} imports {bad}"
