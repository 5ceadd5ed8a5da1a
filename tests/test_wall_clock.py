"""Nothing reads the wall clock where it should take a clock.

Two checks: a static one (only :mod:`storage.clock` calls ``datetime.now`` and friends, and the
pure ``drift`` package never imports it), and a behavioural one (code given a simulated clock
gives the same answer whatever the real date is, checked by moving the wall clock with
time-machine).
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy.orm import sessionmaker

from jobs.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("drift", "jobs", "storage", "reports")
CLOCK_MODULE = ROOT / "storage" / "clock.py"
# (object, attribute) pairs whose call reads the wall clock
WALL_CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("pd.Timestamp", "now"),
    ("Timestamp", "now"),
    ("pd.Timestamp", "utcnow"),
}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def wall_clock_reads(path: Path) -> list[str]:  # "file.py:LINE owner.attr()" per hit
    """``file:line call`` for every call of a wall-clock function in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = _dotted(node.func.value)
            if owner is not None and (owner.split(".")[-1], node.func.attr) in {
                (o.split(".")[-1], a) for o, a in WALL_CLOCK_CALLS
            }:
                found.append(f"{path.name}:{node.lineno} {owner}.{node.func.attr}()")
    return found


def test_the_static_check_finds_a_wall_clock_read(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text("import datetime as dt\nfrom datetime import datetime\nx = datetime.now()\ny = dt.date.today()\n")
    assert [hit.split(" ", 1)[1] for hit in wall_clock_reads(sample)] == ["datetime.now()", "dt.date.today()"]


def test_only_storage_clock_reads_the_wall_clock():
    offenders = [
        hit
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != CLOCK_MODULE and "migrations" not in path.parts
        for hit in wall_clock_reads(path)
    ]
    assert offenders == [], "read the time through a `now`/clock argument or storage.clock.wall_clock"


def test_the_pure_drift_package_never_takes_the_wall_clock():
    users = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "drift").rglob("*.py"))
        if "storage.clock" in path.read_text(encoding="utf-8")
    ]
    assert users == []


MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


def fortnight_fires(real_date: datetime) -> dict[str, int]:
    """How many times each job fires over a simulated fortnight from MONDAY, on the given real date."""
    settings = Settings(database={"url": "sqlite://"}, models=[{"name": "digits", "class_labels": ["0", "1"]}])
    from jobs.runner.scheduler import build_scheduler

    with time_machine.travel(real_date, tick=False):
        scheduler = build_scheduler(sessionmaker(), settings, clock=lambda: MONDAY)
        counts = {}
        end = MONDAY + timedelta(days=14)
        for job in scheduler.get_jobs():
            previous, now, n = None, MONDAY, 0
            while (t := job.trigger.get_next_fire_time(previous, now)) is not None and t <= end:
                n += 1
                previous, now = t, t + timedelta(seconds=1)
            counts[job.id] = n
    return counts


@pytest.mark.parametrize(
    "real_date",
    [
        pytest.param(datetime(2019, 3, 1, 12, tzinfo=UTC), id="years-before"),
        pytest.param(MONDAY + timedelta(days=1, hours=22), id="two-days-in"),
        pytest.param(datetime(2031, 7, 15, 3, tzinfo=UTC), id="years-after"),
    ],
)
def test_the_simulated_schedule_does_not_depend_on_the_real_date(real_date: datetime):
    assert fortnight_fires(real_date) == fortnight_fires(MONDAY)
    assert fortnight_fires(real_date)["ingest"] == 14 * 24 * 4
