"""Every drift module imports on its own, and drift's import graph has no cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "drift"
MODULES = sorted(f"drift.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imported_drift_modules(path: Path, known: set[str]) -> set[str]:
    """drift modules imported anywhere in ``path`` (module level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in known:
                out.add(node.module)
            if node.module == "drift":  # ``from drift import errors`` or ``from drift import compare``
                out.update(f"drift.{a.name}" if f"drift.{a.name}" in known else "drift" for a in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    known = {*MODULES, "drift"}
    graph = {m: imported_drift_modules(PACKAGE / f"{m.removeprefix('drift.')}.py", known) for m in MODULES}
    graph["drift"] = imported_drift_modules(PACKAGE / "__init__.py", known)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_the_known_edges() -> None:
    graph = import_graph()
    assert "drift.engine_base" in graph["drift.evidently_engine"]
    assert "drift.evidently_engine" in graph["drift.comparison"]


def test_drift_import_graph_has_no_cycle() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_in_a_fresh_interpreter(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
