"""Local (stored rows), lake with pyarrow and lake with Spark give the same day states and verdicts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from drift import compare_profiles
from jobs.check.findings import findings_inputs
from jobs.check.job import check
from jobs.check.reference import load_reference
from jobs.check.windows import WindowOfProfiles, window_profile
from jobs.config import Settings
from jobs.lake.engine import external_days
from storage import repository
from storage.models import QuarantinedRow, WindowProfileRow
from tests.jobs.lake.agree import assert_same_label_findings, assert_same_result, assert_same_window
from tests.jobs.lake.conftest import WEEK_END, WEEK_ROWS, WEEK_START, World

NOW = WEEK_END + timedelta(hours=3)


def window_of(world: World, settings: Settings) -> tuple[Any, WindowOfProfiles]:
    model = settings.models[0]
    with world.database.session_factory() as s:
        model_row = repository.get_model(s, "pets")
        reference, reference_row = load_reference(s, model_row, 1)
        inputs, _ = findings_inputs(s, model, model_row, 1, reference, reference_row)
        external = external_days(s, settings, model, model_row)
        window = window_profile(s, model, model_row, 1, reference, WEEK_START, WEEK_END, NOW, inputs, external=external)
    return reference, window


def lake(world: World, compute: str) -> Settings:
    return world.with_source({"kind": "lake", "path": str(world.lake), "compute": compute})


def test_lake_read_by_pyarrow_gives_the_day_states_of_the_stored_rows(world: World) -> None:
    reference, stored = window_of(world, world.files)
    _, local = window_of(world, lake(world, "local"))
    assert stored.profile is not None and stored.profile.n_rows == WEEK_ROWS
    assert_same_window(stored, local)
    assert_same_result(compare_profiles(reference, stored.profile), compare_profiles(reference, local.profile))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # both: the check test below
def test_lake_read_by_spark_gives_the_same_day_states(world: World, spark: Any) -> None:
    reference, local = window_of(world, lake(world, "local"))
    _, by_spark = window_of(world, lake(world, "spark"))
    assert_same_window(local, by_spark)
    assert_same_result(compare_profiles(reference, local.profile), compare_profiles(reference, by_spark.profile))


@pytest.mark.parametrize("compute", ["local", "spark"])
def test_weekly_check_of_a_lake_stores_days_and_quarantines_its_rejects(
    world: World, compute: str, request: pytest.FixtureRequest
) -> None:
    if compute == "spark":
        request.getfixturevalue("spark")
    [from_rows] = check(world.database.session_factory, world.files, "pets", end=WEEK_END, now=NOW)
    settings = lake(world, compute)
    [from_lake] = check(world.database.session_factory, settings, "pets", end=WEEK_END, now=NOW)
    assert from_lake.n_rows == from_rows.n_rows == WEEK_ROWS
    assert from_lake.result is not None and from_rows.result is not None
    assert_same_result(from_rows.result, from_lake.result)
    assert from_lake.retrain_worthy == from_rows.retrain_worthy and from_lake.reasons == from_rows.reasons
    assert from_lake.verdict is not None and from_rows.verdict is not None
    assert from_lake.verdict.to_dict() == from_rows.verdict.to_dict()
    assert_same_label_findings(from_rows, from_lake)
    with world.database.session_factory() as s:
        days = s.scalars(select(WindowProfileRow)).all()
        lake_rejects = s.scalars(select(QuarantinedRow).where(QuarantinedRow.source.like("lake:%"))).all()
    assert len(days) == 7 and sum(d.n_rows for d in days) == WEEK_ROWS
    assert sorted(r.reason for r in lake_rejects) == ["missing value", "probabilities sum to 1.5000, not 1 (±0.01)"]
    # a second check reuses the stored days: same answer, no partition profiled again
    [again] = check(world.database.session_factory, settings, "pets", end=WEEK_END, now=NOW)
    assert again.result is not None
    assert_same_result(from_lake.result, again.result)
