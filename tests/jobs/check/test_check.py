from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from drift import compare_profiles
from jobs.check.frames import frame_from_rows, layout
from jobs.check.job import check
from jobs.check.reference import load_reference, reference_from_window
from jobs.check.windows import segments
from jobs.ingest.run import ingest
from storage import bulk, repository
from storage.models import DriftColumnResult, DriftRun, WindowProfileRow
from storage.windows import iter_rows
from tests.jobs.logdata import make_rows, settings_for, write_jsonl

REF_START = datetime(2026, 10, 1, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)


def _setup(database, tmp_path, current_rows):
    drop = tmp_path / "drop"
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)}, batch_size=5000)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    write_jsonl(drop / "ref.jsonl", make_rows(1500, seed=0, start=REF_START, minutes_per_row=5))
    write_jsonl(drop / "week.jsonl", current_rows)
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    return settings


def _week(**shift):
    # 1,400 rows over the week, ids after the reference rows
    return make_rows(1400, seed=7, start_index=10_000, start=WEEK_START, minutes_per_row=7.2, **shift)


def test_segments_cut_at_midnight():
    start = datetime(2026, 11, 2, 6, tzinfo=UTC)
    cut = segments(start, start + timedelta(days=2))
    assert [(a.day, a.hour, b.day, b.hour, full) for a, b, full in cut] == [
        (2, 6, 3, 0, False),
        (3, 0, 4, 0, True),
        (4, 0, 4, 6, False),
    ]


def test_same_distribution_is_quiet_and_stored(database, tmp_path):
    settings = _setup(database, tmp_path, _week())
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END + timedelta(hours=1))
    assert report.n_rows == 1400
    assert not report.drifted and not report.retrain_worthy and report.reasons == ()
    with database.session_factory() as s:
        run = s.get(DriftRun, report.run_id)
        n_columns = s.scalar(
            select(func.count()).select_from(DriftColumnResult).where(DriftColumnResult.run_id == run.id)
        )
    assert run.drifted is False and n_columns == len(report.result.columns)


def test_shifted_feature_and_outputs_drift_and_are_retrain_worthy(database, tmp_path):
    settings = _setup(database, tmp_path, _week(brightness_shift=0.3, logit_shift=2.0))
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    assert report.drifted and report.outputs_drifted
    assert report.result.column("brightness").drifted
    assert not report.result.column("sharpness").drifted
    assert report.retrain_worthy and any(r.startswith("outputs drifted") for r in report.reasons)


def test_weekly_check_from_daily_profiles_equals_profiling_the_rows(database, tmp_path):
    settings = _setup(database, tmp_path, _week(brightness_shift=0.1))
    now = WEEK_END + timedelta(days=1)
    [first] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    [second] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    model = settings.models[0]
    with database.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(WindowProfileRow)) == 7
        model_row = repository.get_model(s, "pets")
        reference, _ = load_reference(s, model_row, 1)
        import pandas as pd

        frame = pd.concat(
            frame_from_rows(model, rows)
            for rows in iter_rows(s, model_row.id, layout(model), start=WEEK_START, end=WEEK_END)
        )
    direct = compare_profiles(reference, reference.profile(frame))
    for result in (first.result, second.result):
        assert [(c.column, c.score, c.drifted) for c in result.columns] == [
            (c.column, c.score, c.drifted) for c in direct.columns
        ]


def test_a_late_row_makes_its_day_profile_stale(database, tmp_path):
    settings = _setup(database, tmp_path, _week())
    now = WEEK_END + timedelta(days=1)
    [before] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    late = make_rows(1, seed=99, start_index=50_000, start=WEEK_START + timedelta(days=2, hours=3))
    write_jsonl(tmp_path / "drop" / "late.jsonl", late)
    ingest(database.session_factory, settings)
    [after] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    assert after.n_rows == before.n_rows + 1


def test_a_version_without_reference_is_an_error(database, tmp_path):
    drop = tmp_path / "drop"
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    write_jsonl(drop / "week.jsonl", _week())
    ingest(database.session_factory, settings)
    from drift.errors import ReferenceSetNotFound

    with pytest.raises(ReferenceSetNotFound, match="version 1 has no reference set"):
        check(database.session_factory, settings, "pets", end=WEEK_END)


def test_a_late_row_after_pruning_is_merged_into_the_kept_day_profile(database, tmp_path):
    from storage import bulk

    settings = _setup(database, tmp_path, _week())
    now = WEEK_END + timedelta(days=1)
    [before] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    with database.session_factory.begin() as s:  # retention removes the week's raw rows
        model_id = repository.get_model(s, "pets").id
        assert bulk.prune_predictions(s.connection(), model_id, WEEK_END) > 0
    late = make_rows(1, seed=99, start_index=50_000, start=WEEK_START + timedelta(days=2, hours=3))
    write_jsonl(tmp_path / "drop" / "late.jsonl", late)
    ingest(database.session_factory, settings)
    [after] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    assert after.n_rows == before.n_rows + 1  # the kept profiles still count the pruned rows


def test_an_ingest_alongside_a_long_check_waits_less_than_a_second(database, tmp_path, monkeypatch):
    """The check computes outside any write transaction: ingestion is not held up by it (SQLite's one writer)."""
    import threading
    import time

    import jobs.check.job as check_job

    settings = _setup(database, tmp_path, _week())
    computing, release = threading.Event(), threading.Event()
    real_findings = check_job.compute_findings

    def slow_findings(*args, **kwargs):
        computing.set()  # the window is profiled (day profiles computed), findings are next
        release.wait(10)  # a long computation
        return real_findings(*args, **kwargs)

    monkeypatch.setattr(check_job, "compute_findings", slow_findings)
    reports: list = []
    checker = threading.Thread(
        target=lambda: reports.extend(check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END))
    )
    checker.start()
    try:
        assert computing.wait(30)
        write_jsonl(tmp_path / "drop" / "late.jsonl", make_rows(200, seed=3, start_index=50_000, start=WEEK_END))
        began = time.monotonic()
        (report,) = ingest(database.session_factory, settings, streams=("predictions",))
        waited = time.monotonic() - began
    finally:
        release.set()
        checker.join(30)
    assert report.inserted == 200
    assert waited < 1.0, f"ingest waited {waited:.2f} s for the check"
    assert reports and reports[0].run_id is not None
    with database.session_factory() as s:  # the check's results were stored after the ingest
        assert s.scalar(select(func.count()).select_from(WindowProfileRow)) == 7


def test_rows_committed_while_a_day_is_read_are_counted_by_the_next_check(database, tmp_path, monkeypatch):
    """The scan reads in (ts, id) order: late rows landing behind it must not be skipped for good."""
    import jobs.check.windows as check_windows
    import storage.windows as stored_windows

    settings = _setup(database, tmp_path, _week())
    now, day3 = WEEK_END + timedelta(days=1), WEEK_START + timedelta(days=2)
    real, done = stored_windows.iter_rows, []

    def ingest_between_pages(*args, **kwargs):
        kwargs["chunk_size"] = 50
        for i, chunk in enumerate(real(*args, **kwargs)):
            yield chunk
            if not done and kwargs.get("start") == day3 and i == 0:
                done.append(True)  # two late rows of that day, one behind the scan and one ahead of it
                late = make_rows(1, seed=98, start_index=60_000, start=day3 + timedelta(hours=1))
                late += make_rows(1, seed=99, start_index=60_001, start=day3 + timedelta(hours=20))
                write_jsonl(tmp_path / "drop" / "late.jsonl", late)
                ingest(database.session_factory, settings)

    monkeypatch.setattr(check_windows, "iter_rows", ingest_between_pages)
    [during] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    monkeypatch.setattr(check_windows, "iter_rows", real)
    [after] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    assert done and during.n_rows == 1400  # rows committed after the scan began wait for the next check
    assert after.n_rows == after.figures.n_rows == 1402


def test_a_pruned_day_keeps_its_profile_and_findings_when_settings_change(database, tmp_path):
    settings = _setup(database, tmp_path, _week(brightness_shift=0.5))
    now = WEEK_END + timedelta(days=1)
    [first] = check(database.session_factory, settings, "pets", end=WEEK_END, now=now)
    with database.session_factory.begin() as s:
        assert bulk.prune_predictions(s.connection(), repository.get_model(s, "pets").id, WEEK_END) > 0
    model = settings.models[0]
    lower = settings.model_copy(
        update={"models": (model.model_copy(update={"confidence_threshold": model.confidence_threshold - 0.1}),)}
    )
    for _ in range(2):  # the stored findings are out of date, and the day's rows are gone: kept
        [again] = check(database.session_factory, lower, "pets", end=WEEK_END, now=now)
        assert again.n_rows == again.figures.n_rows == first.n_rows == 1400
        kept, before = again.figures.confident_outliers, first.figures.confident_outliers
        assert (kept.count, kept.rate) == (before.count, before.rate)
    write_jsonl(tmp_path / "drop" / "late.jsonl", make_rows(1, seed=99, start_index=50_000, start=WEEK_START))
    ingest(database.session_factory, lower)
    [late] = check(database.session_factory, lower, "pets", end=WEEK_END, now=now)
    assert late.n_rows == late.figures.n_rows == 1401
