"""All SQL lives in storage/: the job modules call storage functions and build no statement.

Every module under jobs/ is held to it, but the readers of SQL sources (the team's own tables).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The exceptions read the team's own production tables (a SQL source), not driftkeeper's
# database: their queries are the source's, built from the config (ingestion's reader, and the
# check's push-down, which aggregates in the source database).
SOURCE_READERS = {"jobs/ingest/sources.py", "jobs/pushdown/engine.py", "jobs/pushdown/sql.py"}
JOB_MODULES = tuple(
    str(path.relative_to(ROOT))
    for path in sorted((ROOT / "jobs").rglob("*.py"))
    if str(path.relative_to(ROOT)) not in SOURCE_READERS
)
STATEMENT_BUILDERS = {"select", "update", "delete", "insert", "func", "text"}


def sql_uses(path: Path) -> list[str]:
    """Where ``path`` imports a statement builder from sqlalchemy, or reaches one through the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    packages: set[str] = set()  # names bound to sqlalchemy (or one of its modules)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in STATEMENT_BUILDERS:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                elif alias.name in ("sql", "expression"):
                    packages.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            packages.update(
                (alias.asname or alias.name).split(".")[0]
                for alias in node.names
                if alias.name.split(".")[0] == "sqlalchemy"
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in STATEMENT_BUILDERS:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in packages:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    for node in ast.walk(tree):  # the legacy session.query(...): a call, not a `query` field of the config
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "query":
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}")
    return found


@pytest.mark.parametrize("module", JOB_MODULES)
def test_a_job_module_builds_no_sql(module: str):
    assert sql_uses(ROOT / module) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("from sqlalchemy import func, select", 2, id="from-import"),
        pytest.param("from sqlalchemy.sql.expression import text", 1, id="from-submodule"),
        pytest.param("import sqlalchemy as sa\nsa.update(T)", 1, id="module-attribute"),
        pytest.param("from sqlalchemy import sql\nsql.expression.delete(T)", 1, id="sql-package"),
        pytest.param("rows = session.query(T).all()", 1, id="legacy-query"),
        pytest.param("from sqlalchemy.orm import Session, sessionmaker\nfrom storage import versions", 0, id="clean"),
    ],
)
def test_the_check_sees_every_way_in(tmp_path: Path, source: str, expected: int):
    path = tmp_path / "module.py"
    path.write_text(source + "\n", encoding="utf-8")
    assert len(sql_uses(path)) == expected
