"""Push-down aggregates give the counts, and so the verdicts, of profiling the stored rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from drift import compare_profiles
from jobs.check.job import check
from jobs.pushdown.sql import numpy_sum
from storage.models import QuarantinedRow, WindowProfileRow
from tests.jobs.lake.agree import SCORE_RTOL, assert_same_result, assert_same_window
from tests.jobs.lake.conftest import WEEK_END, WEEK_ROWS, World
from tests.jobs.lake.test_agreement import NOW, window_of
from tests.jobs.pushdown.source import pushdown


def test_numpy_sum_adds_in_numpys_order() -> None:
    assert numpy_sum(["a", "b", "c"]) == "(a + ((0.0::float8 + b) + c))"


def test_pushdown_gives_the_counts_of_the_stored_rows(world: World, source_url: str) -> None:
    reference, stored = window_of(world, world.files)
    _, pushed = window_of(world, pushdown(world, source_url))
    assert pushed.profile is not None and pushed.profile.n_rows == WEEK_ROWS
    # the world has labels and an embedding: the estimate (with its far rows) and the outliers are compared
    assert stored.findings.estimate is not None and stored.findings.estimate.n_far is not None
    assert stored.findings.n_outliers > 0
    # the sample is another uniform one (md5 of the id): all but the embedding test read counts only;
    # outlier scores are computed in SQL, equal up to rounding
    assert_same_window(stored, pushed, sample=False, score_rtol=SCORE_RTOL)
    a, b = compare_profiles(reference, stored.profile), compare_profiles(reference, pushed.profile)
    assert_same_result(a, b, embedding=False)


def test_weekly_check_by_pushdown_agrees_and_quarantines_rejects(world: World, source_url: str) -> None:
    [from_rows] = check(world.database.session_factory, world.files, "pets", end=WEEK_END, now=NOW)
    settings = pushdown(world, source_url)
    [pushed] = check(world.database.session_factory, settings, "pets", end=WEEK_END, now=NOW)
    assert pushed.n_rows == WEEK_ROWS and pushed.result is not None and from_rows.result is not None
    assert_same_result(from_rows.result, pushed.result, embedding=False)
    assert (pushed.retrain_worthy, pushed.reasons) == (from_rows.retrain_worthy, from_rows.reasons)
    with world.database.session_factory() as s:
        days = s.scalars(select(WindowProfileRow)).all()
        rejects = s.scalars(select(QuarantinedRow).where(QuarantinedRow.source.like("sql:%"))).all()
    assert len(days) == 7 and sum(d.n_rows for d in days) == WEEK_ROWS
    assert sorted(r.reason for r in rejects) == ["missing value", "probabilities sum to 1.5000, not 1 (±0.01)"]
    [again] = check(world.database.session_factory, settings, "pets", end=WEEK_END + timedelta(0), now=NOW)
    assert again.result is not None
    assert_same_result(pushed.result, again.result)
