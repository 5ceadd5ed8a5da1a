"""The four paths on a few hundred thousand rows: stored rows, the lake read by pyarrow and by
Spark, and push-down in PostgreSQL give the same counts, findings and verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from drift import compare_profiles
from jobs.check.job import check
from jobs.config import Settings
from tests.jobs.lake.agree import SCORE_RTOL, assert_same_label_findings, assert_same_result, assert_same_window
from tests.jobs.lake.conftest import WEEK_END, World, build_world
from tests.jobs.lake.test_agreement import NOW, window_of
from tests.jobs.pushdown.conftest import TABLE, write_table

ROWS = 200_000


@pytest.fixture
def big_world(database: Any) -> World:
    return build_world(database, ROWS)


def _sources(world: World, source_url: str) -> dict[str, Settings]:
    pushdown: dict[str, Any] = {"kind": "sql", "url": source_url, "table": TABLE, "compute": "pushdown"}
    pushdown |= {"columns": {"timestamp": "ts"}}
    out = {
        compute: world.with_source({"kind": "lake", "path": str(world.lake), "compute": compute})
        for compute in ("local", "spark")
    }
    data = world.with_source(pushdown).model_dump(mode="python")
    data["database"] = {"url": world.files.database.url.get_secret_value()}
    data["models"][0]["predictions"]["url"] = source_url
    data["models"][0]["probabilities"] = {"columns": ["p_cat", "p_dog", "p_other"]}
    out["pushdown"] = Settings(**data)
    return out


def test_stored_lake_spark_and_pushdown_agree_on_200k_rows(
    big_world: World, postgres_schema_url: str, spark: Any
) -> None:
    write_table(postgres_schema_url, big_world.rows)
    sources = _sources(big_world, postgres_schema_url)
    reference, stored = window_of(big_world, big_world.files)
    assert stored.profile is not None and stored.profile.n_rows == ROWS
    expected = compare_profiles(reference, stored.profile)
    for name, settings in sources.items():
        _, window = window_of(big_world, settings)
        # push-down draws another uniform sample (md5 of the id): the embedding test reads it
        exact = name != "pushdown"
        assert_same_window(stored, window, sample=exact, score_rtol=0.0 if exact else SCORE_RTOL)
        assert window.profile is not None
        assert_same_result(expected, compare_profiles(reference, window.profile), embedding=exact)
    [from_rows] = check(big_world.database.session_factory, big_world.files, "pets", end=WEEK_END, now=NOW)
    for name in ("spark", "pushdown"):
        [report] = check(big_world.database.session_factory, sources[name], "pets", end=WEEK_END, now=NOW)
        assert report.n_rows == ROWS and report.result is not None and from_rows.result is not None
        assert (report.retrain_worthy, report.reasons) == (from_rows.retrain_worthy, from_rows.reasons), name
        assert_same_label_findings(from_rows, report)
