"""What fires when, on SQLite and PostgreSQL: rises and revisions, dedup, cooldown, resolve,
retrain events, failed jobs, blind windows, grouping per model and week."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobs.alerts.notify import notify_outcome
from jobs.runner.execute import JobOutcome
from storage import alerts as store
from storage.statuses import JobStatus
from tests.jobs.alerts.outcomes import (
    NOW,
    WINDOW_END,
    check,
    failed_job,
    retrain,
    run,
    settings,
    succeeded_job,
    webhook_settings,
)
from tests.jobs.alerts.receivers import HttpReceiver

BLIND = {"reason": "no accepted rows of the champion", "accepted": 0, "quarantined": 40, "main_reason": "schema"}


class Sent:
    """Notifies outcomes at successive times; says what each call sent, as (status, alertname, level)."""

    def __init__(self, database: Any, receiver: HttpReceiver, **alerts: Any) -> None:
        self.factory = database.session_factory
        self.config = webhook_settings(receiver, database.url, **alerts)
        self.receiver = receiver
        self.now = NOW

    def __call__(self, outcome: JobOutcome, *, after: timedelta = timedelta(minutes=5)) -> list[tuple[str, ...]]:
        self.now += after
        seen = len(self.receiver.requests)
        report = notify_outcome(self.factory, self.config, outcome, now=self.now)
        assert report.error is None
        return [
            (a["status"], a["labels"]["alertname"].removeprefix("Driftkeeper"), a["labels"].get("level", ""))
            for r in self.receiver.requests[seen:]
            for a in r.json()["alerts"]
        ]


@pytest.fixture
def sent(database, receiver: HttpReceiver) -> Sent:
    return Sent(database, receiver)


def test_a_verdict_fires_as_it_rises_and_the_same_level_is_deduped(sent: Sent):
    assert sent(check(run())) == []  # ok, nothing firing: nothing to say
    assert sent(check(run(drifted=True))) == [("firing", "Verdict", "watch")]
    assert sent(check(run(drifted=True))) == []  # the same level: a duplicate
    assert sent(check(run(drifted=True, worthy=True))) == [("firing", "Verdict", "act")]  # a revision
    assert sent(check(run(drifted=True))) == []  # lower than what was alerted: not a rise
    assert sent(check(run())) == [("resolved", "Verdict", "act")]
    assert sent(check(run())) == []  # resolved once
    assert sent(check(run(drifted=True))) == [("firing", "Verdict", "watch")]  # fires anew


def test_the_same_level_is_sent_again_after_the_cooldown(sent: Sent):
    assert sent(check(run(drifted=True))) == [("firing", "Verdict", "watch")]
    assert sent(check(run(drifted=True)), after=timedelta(minutes=59)) == []
    assert sent(check(run(drifted=True)), after=timedelta(minutes=2)) == [("firing", "Verdict", "watch")]


def test_each_week_is_its_own_alert_and_message(sent: Sent, receiver: HttpReceiver):
    next_week = WINDOW_END + timedelta(days=7)
    assert sent(check(run(drifted=True))) == [("firing", "Verdict", "watch")]
    assert sent(check(run(drifted=True, end=next_week))) == [("firing", "Verdict", "watch")]
    weeks = [r.json()["groupLabels"]["week"] for r in receiver.requests]
    assert weeks == ["2026-W38", "2026-W39"]
    assert sent(check(run(end=next_week))) == [("resolved", "Verdict", "watch")]  # W38 stays firing
    assert receiver.requests[-1].json()["groupLabels"]["week"] == "2026-W39"


def test_several_windows_of_one_week_say_their_worst_level_in_one_message(sent: Sent, receiver: HttpReceiver):
    outcome = check(run(drifted=True, worthy=True), run(drifted=False))
    assert sent(outcome) == [("firing", "Verdict", "act")]
    assert len(receiver.requests) == 1


def test_a_retrain_sends_once_per_run_and_skipped_sends_nothing(sent: Sent):
    assert sent(retrain("promoted", run_id=3)) == [("firing", "Retrain", "")]
    assert sent(retrain("promoted", run_id=3)) == []  # the same run, notified twice
    assert sent(retrain("rejected", run_id=4)) == [("firing", "Retrain", "")]
    assert sent(retrain("failed", run_id=5)) == [("firing", "Retrain", "")]  # not also a failed-job alert
    assert sent(retrain("skipped", run_id=None, version=None)) == []


def test_a_retrain_alert_says_the_decision(sent: Sent, receiver: HttpReceiver):
    sent(retrain("rejected", run_id=9, version=4))
    (alert,) = receiver.requests[-1].json()["alerts"]
    assert alert["labels"]["decision"] == "rejected" and alert["labels"]["version"] == "4"
    assert "accuracy +0.041" in alert["annotations"]["description"]


def test_a_failed_job_fires_once_within_the_cooldown_and_a_success_resolves_it(sent: Sent, receiver: HttpReceiver):
    assert sent(failed_job("ingest")) == [("firing", "JobFailed", "")]
    assert sent(failed_job("ingest")) == []
    assert sent(failed_job("check", "digits")) == [("firing", "JobFailed", "")]  # another job+model
    assert sent(succeeded_job("ingest")) == [("resolved", "JobFailed", "")]
    assert sent(succeeded_job("ingest")) == []
    assert sent(failed_job("ingest"), after=timedelta(minutes=1)) == [("firing", "JobFailed", "")]
    assert sent(failed_job("ingest"), after=timedelta(minutes=61)) == [("firing", "JobFailed", "")]
    (alert,) = receiver.requests[-1].json()["alerts"]
    assert alert["labels"]["job"] == "ingest" and alert["annotations"]["description"] == "source rejected: bad rows"


def test_a_blind_window_fires_and_a_later_check_that_sees_resolves_it(sent: Sent, receiver: HttpReceiver):
    assert sent(check(run(blind=BLIND))) == [("firing", "BlindWindow", "")]
    assert sent(check(run(blind=BLIND))) == []
    (alert,) = receiver.requests[0].json()["alerts"]
    assert "40 quarantined" in alert["annotations"]["description"] and "schema" in alert["annotations"]["description"]
    next_week = WINDOW_END + timedelta(days=7)
    assert sorted(sent(check(run(drifted=True, end=next_week)))) == [
        ("firing", "Verdict", "watch"),
        ("resolved", "BlindWindow", ""),
    ]
    assert len(receiver.requests) == 3  # one message per model and week


def test_alerts_of_other_models_are_their_own(sent: Sent):
    assert sent(check(run(drifted=True, model="other"), model="other")) == [("firing", "Verdict", "watch")]
    assert sent(check(run(drifted=True))) == [("firing", "Verdict", "watch")]
    assert sent(check(run(model="other"), model="other")) == [("resolved", "Verdict", "watch")]


def test_states_are_stored_per_fingerprint(database, sent: Sent):
    sent(check(run(drifted=True, worthy=True)))
    sent(check(run()))
    with database.session_factory() as session:
        (state,) = store.firing(session, "verdict", "digits") or [None]
    assert state is None
    with database.session_factory() as session:
        deliveries = store.recent_deliveries(session)
    assert [d.status for d in deliveries] == ["resolved", "firing"]
    assert deliveries[0].fingerprints == deliveries[1].fingerprints


def test_no_channel_returns_at_once_without_the_database():
    from sqlalchemy.orm import sessionmaker

    class Untouchable(sessionmaker):  # type: ignore[type-arg]
        def __call__(self, **kw: Any) -> Any:
            raise AssertionError("the database was touched")

        def begin(self) -> Any:
            raise AssertionError("the database was touched")

    report = notify_outcome(Untouchable(), settings(), failed_job(), now=NOW)
    assert report.alerts == () and report.deliveries == () and report.error is None


def test_a_broken_database_is_logged_never_raised(receiver: HttpReceiver, caplog, tmp_path):
    from storage.engine import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema
    try:
        report = notify_outcome(make_session_factory(engine), webhook_settings(receiver), failed_job(), now=NOW)
    finally:
        engine.dispose()
    assert report.error is not None and "alert_states" in report.error
    assert "not sent" in caplog.text


def test_an_interrupted_job_says_nothing(sent: Sent):
    interrupted = JobOutcome(job="ingest", model=None, status=JobStatus.INTERRUPTED, exit_code=1, error="stopped")
    assert sent(interrupted) == []
