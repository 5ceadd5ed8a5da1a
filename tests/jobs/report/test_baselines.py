"""The week against three baselines: the serving version's reference, the first version's, the week before.

Seeded: version 1's reference on unshifted inputs; version 2's reference on inputs whose brightness
is shifted by 0.5; three weeks of version 2: W41 unshifted, W42 and W43 shifted. So against the
serving reference W42 does not drift, against version 1 its brightness does; W42 drifts from W41
week over week, W43 does not drift from W42. The baselines store nothing: the day profiles the
check stored for version 2 are the same before and after.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from drift.result import ColumnDrift, DriftResult
from jobs.check.job import check
from jobs.check.reference import reference_from_window
from jobs.config import ModelSettings, Settings
from jobs.ingest.run import ingest
from jobs.report.baselines import baseline_version, week_baselines
from jobs.report.weeks import week_window
from reports.baselines import BaselineColumn, BaselineDrift, Baselines, ComparedWeek
from reports.render import environment
from storage import repository
from storage.models import WindowProfileRow
from tests.jobs.logdata import make_rows, settings_for, write_jsonl

REF1 = datetime(2026, 9, 7, tzinfo=UTC)  # Mondays
REF2 = datetime(2026, 9, 21, tzinfo=UTC)
SHIFT = 0.5
WEEKS = {"2026-W41": (0.0, 40), "2026-W42": (SHIFT, 42), "2026-W43": (SHIFT, 43)}  # week: (brightness shift, seed)
NOW = datetime(2026, 10, 27, tzinfo=UTC)
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def _seeded(database, tmp_path) -> Settings:
    """Versions 1 and 2 with their references, three weeks of version 2, the last two checked."""
    drop = tmp_path / "drop"
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)}, batch_size=5000)
    with database.session_factory.begin() as s:
        model_row = repository.ensure_model(s, "pets", "classification")
        repository.register_version(s, model_row, 1)
        repository.register_version(s, model_row, 2)
    write_jsonl(drop / "ref1.jsonl", make_rows(1000, seed=0, start_index=0, start=REF1, minutes_per_row=10))
    ref2 = make_rows(1000, seed=1, start_index=2000, version=2, start=REF2, minutes_per_row=10, brightness_shift=SHIFT)
    write_jsonl(drop / "ref2.jsonl", ref2)
    for i, (week, (shift, seed)) in enumerate(WEEKS.items()):
        rows = make_rows(
            700,
            seed=seed,
            start_index=10_000 + 1000 * i,
            version=2,
            start=week_window(week)[0],
            minutes_per_row=14,
            brightness_shift=shift,
        )
        write_jsonl(drop / f"{week}.jsonl", rows)
    ingest(database.session_factory, settings)
    model = settings.models[0]
    reference_from_window(database.session_factory, model, 1, REF1, REF1 + timedelta(days=7))
    reference_from_window(database.session_factory, model, 2, REF2, REF2 + timedelta(days=7))
    for week in ("2026-W42", "2026-W43"):
        check(database.session_factory, settings, "pets", window_days=7, end=week_window(week)[1], now=NOW)
    return settings


def _stored_days(database) -> list[tuple[object, ...]]:
    with database.session_factory() as s:
        rows = s.scalars(select(WindowProfileRow).order_by(WindowProfileRow.id))
        return [(r.version, r.day, r.fingerprint, r.n_rows, r.last_row_id, r.updated_at, r.profile) for r in rows]


def _baselines(database, model: ModelSettings, week: str) -> Baselines | None:
    start, end = week_window(week)
    with database.session_factory() as s:
        model_row = repository.get_model(s, "pets")
        return week_baselines(s, model, model_row, 2, start, end, NOW)


def _column(b: BaselineDrift, name: str) -> BaselineColumn:
    return next(c for c in b.columns if c.column == name)


def test_three_baselines_of_a_retrained_version(database, tmp_path):
    settings = _seeded(database, tmp_path)
    model = settings.models[0]
    before = _stored_days(database)
    assert len(before) == 14 and {d[0] for d in before} == {2}  # W42 and W43 of version 2, by the check

    started = time.perf_counter()
    w42 = _baselines(database, model, "2026-W42")
    elapsed = time.perf_counter() - started
    w43 = _baselines(database, model, "2026-W43")
    assert w42 is not None and w43 is not None
    print(f"week_baselines ({database.backend}, 700 rows a week): {elapsed:.3f}s")

    # the serving reference was made on shifted inputs: nothing drifts
    assert w42.serving.against == "reference of version 2" and w42.serving.version == 2
    assert not w42.serving.drifted and not _column(w42.serving, "brightness").drifted
    assert (w42.serving.n_reference, w42.serving.n_current) == (1000, 700)
    # version 1's was not: brightness is far from what the product was designed for
    assert w42.baseline is not None and w42.baseline.against == "baseline version 1" and w42.baseline.version == 1
    assert w42.baseline.drifted and [c.column for c in w42.baseline.drifted_columns] == ["brightness"]
    assert w42.baseline.columns[0].column == "brightness" and w42.baseline.share_drifted > 0
    # week over week: W41 was unshifted, so W42 drifts from it; W43 is like W42
    prev = w42.previous_week
    assert prev is not None and prev.against == "week 2026-W41" and prev.version is None
    assert prev.window == ComparedWeek(
        week="2026-W41", start=week_window("2026-W41")[0], end=week_window("2026-W42")[0]
    )
    assert prev.drifted and [c.column for c in prev.drifted_columns] == ["brightness"]
    assert (prev.n_reference, prev.n_current) == (700, 700)
    assert w43.previous_week is not None and w43.previous_week.against == "week 2026-W42"
    assert not w43.previous_week.drifted and not w43.previous_week.drifted_columns
    assert w43.baseline is not None and _column(w43.baseline, "brightness").drifted and w42.notes == ()

    # nothing stored: the check's day profiles of version 2 are untouched, none were added
    assert _stored_days(database) == before
    # JSON without NaN, read back as it was
    assert Baselines.from_dict(json.loads(json.dumps(w42.to_dict(), allow_nan=False))) == w42

    # pinned to the serving version: no second baseline, and the report says why
    pinned = model.model_copy(update={"drift": model.drift.model_copy(update={"baseline_version": 2})})
    same = _baselines(database, pinned, "2026-W42")
    assert same is not None and same.baseline is None and same.notes == ("the baseline is the serving version 2",)
    # the week before W41 has no rows of version 2; a week without rows has no baselines at all
    first = _baselines(database, model, "2026-W41")
    assert first is not None and first.previous_week is None and "no week-over-week" in first.notes[0]
    assert _baselines(database, model, "2026-W45") is None
    with database.session_factory() as s:
        assert baseline_version(s, model, repository.get_model(s, "pets")) == 1
    assert _stored_days(database) == before


def _result(column: str, drifted: bool, score: float) -> DriftResult:
    col = ColumnDrift(
        column=column, kind="feature", method="ks", score=score, p_value=0.001, threshold=0.05, drifted=drifted
    )
    return DriftResult(
        drifted=drifted,
        columns=(col,),
        share_drifted=1.0 if drifted else 0.0,
        outputs_drifted=None,
        embedding_drifted=None,
        engine="profile",
        policy="p",
        n_reference=10,
        n_current=20,
    )


@pytest.mark.parametrize("baselines", [None, "hostile"], ids=["no-baselines", "hostile-names"])
def test_the_macro_renders_escaped(baselines):
    start = week_window("2026-W42")[0]
    value = None
    if baselines == "hostile":
        value = Baselines(
            version=2,
            serving=BaselineDrift.of(_result("sharpness", False, 0.01), against="reference of version 2", version=2),
            baseline=BaselineDrift.of(_result(HOSTILE, True, float("nan")), against=HOSTILE, version=1),
            previous_week=BaselineDrift.of(
                _result("brightness", True, 0.4),
                against="week 2026-W41",
                version=None,
                window=ComparedWeek(week="2026-W41", start=start - timedelta(days=7), end=start),
            ),
            notes=(HOSTILE,),
        )
    template = environment().from_string(
        '{% from "baselines.html.j2" import baselines_section %}{{ baselines_section(b) }}'
    )
    html = template.render(b=value)
    if value is None:
        assert "No data" in html
        return
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # against, the column, the note
    assert html.count("DRIFT") == 2 and "brightness" in html and "week 2026-W41" in html
    assert "sharpness" not in html  # only drifted columns are listed
    assert value.baseline is not None and value.baseline.columns[0].score is None  # NaN: None in JSON
