"""A lake whose rows are mostly rejected makes a blind window, counted in full (only samples are kept)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from drift.concern import VerdictLevel
from jobs.check.job import check
from jobs.lake.base import SAMPLE_PER_REASON
from storage.models import QuarantinedRow
from tests.jobs.lake.conftest import WEEK_END, WEEK_START, World
from tests.jobs.lake.lakedata import write_lake
from tests.jobs.logdata import make_rows

NOW = WEEK_END + timedelta(hours=3)


def test_a_lake_of_mostly_rejected_rows_is_a_blind_window_on_every_check(world: World, tmp_path: Path) -> None:
    good = make_rows(300, seed=11, start_index=500_000, start=WEEK_START, minutes_per_row=30)
    bad = make_rows(700, seed=12, start_index=600_000, start=WEEK_START, minutes_per_row=14)
    for row in bad:
        row["probabilities"] = json.dumps([0.5, 0.5, 0.5])
    lake = write_lake(tmp_path / "bad-lake", good + bad)
    settings = world.with_source({"kind": "lake", "path": str(lake), "compute": "local"})
    for attempt in ("computed", "reused"):  # the second check reuses the stored days
        [report] = check(world.database.session_factory, settings, "pets", end=WEEK_END, now=NOW)
        assert report.n_rows == 300, attempt
        assert report.blind is not None, attempt
        assert (report.blind.accepted, report.blind.quarantined) == (300, 700), attempt
        assert report.blind.main_reason is not None and "sum to 1.5000" in report.blind.main_reason
        assert report.verdict is not None and report.verdict.level == VerdictLevel.ACT, attempt
    with world.database.session_factory() as s:
        kept = s.scalar(select(func.count()).select_from(QuarantinedRow).where(QuarantinedRow.source.like("lake:%")))
    assert kept == 7 * SAMPLE_PER_REASON  # one reason, seven days: the samples, not the 700 rows
