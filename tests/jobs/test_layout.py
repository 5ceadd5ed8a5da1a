"""The package layout the README describes: jobs laid out by job, the demo a guest."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("drift", "jobs", "storage", "reports")
# The `demo` command is the demo's entry point; nothing else outside the demo imports it (its
# networks live in jobs/demo/digits_model.py, read through the model contract like any team's).
DEMO_IMPORTERS_ALLOWED = {"jobs/cli/commands.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def production_files() -> list[Path]:
    return [p for package in PRODUCTION for p in sorted((ROOT / package).rglob("*.py")) if "migrations" not in p.parts]


def test_nothing_outside_the_demo_imports_it():
    importers = {
        str(path.relative_to(ROOT))
        for path in production_files()
        if "demo" not in path.relative_to(ROOT).parts
        and any(m == "jobs.demo" or m.startswith("jobs.demo.") for m in imported_modules(path))
    }
    assert importers <= DEMO_IMPORTERS_ALLOWED, sorted(importers - DEMO_IMPORTERS_ALLOWED)


def test_layers_point_one_way():
    """drift imports no other layer; storage never imports jobs or reports; reports never imports jobs."""
    forbidden = {"drift": ("jobs", "storage", "reports"), "storage": ("jobs", "reports"), "reports": ("jobs",)}
    offenders = []
    for path in production_files():
        layer = path.relative_to(ROOT).parts[0]
        for module in imported_modules(path):
            if module.split(".")[0] in forbidden.get(layer, ()):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_jobs_is_laid_out_by_job():
    packages = {p.name for p in (ROOT / "jobs").iterdir() if (p / "__init__.py").exists()}
    assert {"cli", "runner", "check", "report", "retrain", "ml", "demo", "ingest"} <= packages
    loose = sorted(p.name for p in (ROOT / "jobs").glob("*.py") if p.name != "__init__.py")
    assert loose == ["config.py", "images.py"]


def test_exit_codes_need_no_typer():
    assert "typer" not in {m.split(".")[0] for m in imported_modules(ROOT / "jobs" / "runner" / "exit_codes.py")}
    daemon = imported_modules(ROOT / "jobs" / "runner" / "scheduler.py")
    assert not any(m.startswith("jobs.cli") for m in daemon)
