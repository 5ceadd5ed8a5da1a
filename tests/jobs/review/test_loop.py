"""The loop: a checked week with flagged predictions, 20 of them reviewed, and the next check
and the retrain's data gathering use the reviewers' labels."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from jobs.check.reference import reference_from_window
from jobs.config import Settings
from jobs.retrain.data import labelled_count
from jobs.review.queue import ReviewKind, decide, progress, review_queue
from jobs.runner.execute import run_job
from storage import repository
from storage.models import DriftRun
from tests.jobs.logdata import make_rows, write_jsonl
from tests.jobs.metrics.data import REF_START, WEEK_END, WEEK_START, labels_for, model_config


def _realized(factory) -> int:
    with factory() as s:
        run = s.scalars(select(DriftRun).order_by(DriftRun.id.desc()).limit(1)).one()
        return int(run.figures["realized_performance"]["n_labelled"])


def test_reviewed_labels_feed_the_next_check_and_the_retrain(database, tmp_path):
    base = model_config(database.url, tmp_path)
    settings = Settings(database={"url": database.url}, ingest=base.ingest, models=[base.models[0].model_dump()])
    drop, labels = tmp_path / "drop", tmp_path / "labels"
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    ref = make_rows(1500, seed=0, start=REF_START, minutes_per_row=5)
    week = make_rows(1400, seed=7, start_index=10_000, start=WEEK_START, minutes_per_row=7.2, brightness_shift=0.3)
    write_jsonl(drop / "ref.jsonl", ref)
    write_jsonl(drop / "week.jsonl", week)
    write_jsonl(labels / "ref.jsonl", labels_for(ref, 1))
    write_jsonl(labels / "week.jsonl", labels_for(week[:600], 2))  # most of the week is not labelled yet
    for job in ("ingest", "labels"):
        assert run_job(job, database.session_factory, settings).status == "succeeded"
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    now = WEEK_END + timedelta(days=14)  # after the labels that did arrive
    outcome = run_job("check", database.session_factory, settings, "pets", end=WEEK_END, now=now)
    assert outcome.status == "succeeded", outcome.error
    before = _realized(database.session_factory)
    assert before == 600

    page = review_queue(database.session_factory, settings, "pets", week="2026-W45", per_page=200, now=now)
    kinds = {i.kind for i in page.items}
    assert {ReviewKind.CONFIDENTLY_WRONG, ReviewKind.CONFIDENT_OUTLIER, ReviewKind.LOW_CONFIDENCE} <= kinds
    chosen = [i for i in page.items if i.kind != ReviewKind.CONFIDENTLY_WRONG][:20]  # those without a label yet
    assert len(chosen) == 20
    for n, item in enumerate(chosen):  # one keystroke each: the reviewer confirms the model, or corrects it
        label = item.predicted_label if n % 2 else next(c for c in page.class_labels if c != item.predicted_label)
        assert (
            decide(
                database.session_factory,
                settings,
                "pets",
                [item.prediction_id],
                label,
                reviewer="ann",
                now=now + timedelta(seconds=5 * n),
            )
            == 1
        )
    after_page = review_queue(database.session_factory, settings, "pets", week="2026-W45", now=now)
    assert after_page.total == page.total - 20
    assert not {i.prediction_id for i in after_page.items} & {i.prediction_id for i in chosen}
    p = progress(database.session_factory, settings, "pets", now=now)
    assert (p.done, p.agreement) == (20, 0.5) and p.per_minute == 12.0

    outcome = run_job("check", database.session_factory, settings, "pets", end=WEEK_END, now=now + timedelta(hours=1))
    assert outcome.status == "succeeded", outcome.error
    assert _realized(database.session_factory) == before + 20
    with database.session_factory() as s:
        model_row = repository.get_model(s, "pets")
        assert labelled_count(s, settings.models[0], model_row, WEEK_START, WEEK_END) == 620
