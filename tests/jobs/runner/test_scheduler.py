"""The scheduler daemon and run_job: simulated time, failures, leases, stopping.

The jobs themselves are replaced by :class:`FakeJobs` (their own tests live beside them);
what is tested here is the wiring: ids, triggers, leases, the job-run history, exit codes.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from drift.errors import ConfigError, LeaseHeldError
from jobs.check.job import CheckReport
from jobs.config import Settings
from jobs.retrain.job import RetrainOutcome, RetrainPlan
from jobs.runner.execute import job_lease_name, run_job
from jobs.runner.scheduler import (
    DAEMON_LEASE,
    JobRunner,
    build_scheduler,
    catch_up,
    serve,
)
from storage import leases, repository
from storage.models import DriftRun, JobRun

MODELS = [{"name": "digits", "class_labels": ["0", "1"]}, {"name": "pets", "class_labels": ["cat", "dog"]}]
WEDNESDAY = datetime(2026, 11, 25, 10, 17, tzinfo=UTC)
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
OTHER = "other-host:1:deadbeef"


def make_settings(url: str = "sqlite://", models: list[dict[str, Any]] | None = None, **schedule: Any) -> Settings:
    schedule = {"daemon_lease_seconds": 10, **schedule}
    # metrics on a free port: daemons of tests running side by side never contend for one
    return Settings(
        database={"url": url}, schedule=schedule, metrics={"port": 0}, models=MODELS if models is None else models
    )


@dataclass
class FakeJobs:
    """Stand-ins for the job functions, recording their calls; ``fail`` makes the first N calls of a job raise."""

    drifted: bool = False
    retrain_worthy: bool = False
    retrain_decision: str = "skipped"
    fail: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    calls: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeJobs:
        monkeypatch.setattr("jobs.ingest.run.ingest", self.ingest)
        monkeypatch.setattr("jobs.check.job.check", self.check)
        monkeypatch.setattr("jobs.retrain.job.retrain", self.retrain)
        report = types.ModuleType("jobs.report.job")
        report.weekly_report = self.report  # type: ignore[attr-defined]
        report.stale_weeks = lambda *args, **kwargs: []  # type: ignore[attr-defined]  # no page to write again
        monkeypatch.setitem(sys.modules, "jobs.report.job", report)
        return self

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def _call(self, name: str, model: str | None, **kwargs: Any) -> None:
        self.calls.append((name, model, kwargs))
        self.started.set()
        if self.delay:
            time.sleep(self.delay)
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise RuntimeError(f"{name} crashed on purpose")

    def ingest(self, session_factory: Any, settings: Settings, model: str | None = None, **kwargs: Any) -> list[Any]:
        self._call("ingest", model, streams=tuple(kwargs["streams"]))
        return []

    def check(self, session_factory: Any, settings: Settings, model: str, **kwargs: Any) -> list[CheckReport]:
        self._call("check", model, **kwargs)
        report = CheckReport(
            model=model,
            version=1,
            run_id=7,
            window_start=WEDNESDAY - timedelta(days=7),
            window_end=WEDNESDAY,
            n_rows=500,
            drifted=self.drifted,
            outputs_drifted=self.drifted,
            embedding_drifted=None,
            retrain_worthy=self.retrain_worthy,
            reasons=("outputs drifted",) if self.retrain_worthy else (),
            result=None,
        )
        return [report]

    def retrain(self, session_factory: Any, settings: Settings, model: str, **kwargs: Any) -> RetrainOutcome:
        self._call("retrain", model, **kwargs)
        plan = RetrainPlan(model=model, should_run=True, reasons=(), champion=1, drift_run_id=7, new_labels=300)
        reasons = ("trainer exited with 1",) if self.retrain_decision == "failed" else ()
        return RetrainOutcome(model=model, decision=self.retrain_decision, plan=plan, reasons=reasons)

    def report(self, session_factory: Any, settings: Settings, model: str, **kwargs: Any) -> Any:
        self._call("report", model, **kwargs)
        return types.SimpleNamespace(to_dict=lambda: {"model": model, "week": kwargs.get("week"), "status": "ok"})


@pytest.fixture
def fake_jobs(monkeypatch: pytest.MonkeyPatch) -> FakeJobs:
    return FakeJobs().install(monkeypatch)


def job_runs(session_factory: sessionmaker[Any]) -> list[tuple[str, str | None, str, str | None]]:
    with session_factory() as s:
        rows = s.scalars(select(JobRun).order_by(JobRun.id)).all()
        return [(r.job, r.model, r.status, r.error) for r in rows]


# -- wiring in simulated time ---------------------------------------------------------------------


def test_jobs_have_explicit_ids_and_the_configured_options():
    settings = make_settings(misfire_grace_seconds=7200)
    scheduler = build_scheduler(sessionmaker(), settings, scheduler_cls=BackgroundScheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"ingest", "labels", "check:digits", "report:digits", "check:pets", "report:pets"}
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 7200)
    assert jobs["check:pets"].args == ("check", "pets")
    assert jobs["ingest"].args == ("ingest", None)


@pytest.mark.parametrize(
    ("timezone", "check_utc", "report_utc"),
    [
        pytest.param("UTC", datetime(2026, 11, 26, 2, tzinfo=UTC), datetime(2026, 11, 30, 6, tzinfo=UTC), id="utc"),
        pytest.param(  # 02:00 and 06:00 in Paris are 01:00 and 05:00 UTC in winter
            "Europe/Paris", datetime(2026, 11, 26, 1, tzinfo=UTC), datetime(2026, 11, 30, 5, tzinfo=UTC), id="paris"
        ),
    ],
)
def test_triggers_fire_at_the_configured_times(timezone: str, check_utc: datetime, report_utc: datetime):
    settings = make_settings(timezone=timezone, ingest_every_minutes=15, labels_every_minutes=60)
    jobs = {job.id: job for job in build_scheduler(sessionmaker(), settings).get_jobs()}
    assert jobs["check:digits"].trigger.get_next_fire_time(None, WEDNESDAY) == check_utc
    assert jobs["report:digits"].trigger.get_next_fire_time(None, WEDNESDAY) == report_utc
    assert jobs["ingest"].trigger.get_next_fire_time(WEDNESDAY, WEDNESDAY) == WEDNESDAY + timedelta(minutes=15)
    assert jobs["labels"].trigger.get_next_fire_time(WEDNESDAY, WEDNESDAY) == WEDNESDAY + timedelta(hours=1)


def test_a_simulated_fortnight_has_fourteen_checks_and_two_reports():
    """A daemon started at MONDAY 00:00: interval jobs first run one interval later."""
    jobs = {job.id: job for job in build_scheduler(sessionmaker(), make_settings(), clock=lambda: MONDAY).get_jobs()}
    end = MONDAY + timedelta(days=14)

    def fires(job_id: str) -> list[datetime]:
        trigger, out, previous, now = jobs[job_id].trigger, [], None, MONDAY
        while (t := trigger.get_next_fire_time(previous, now)) is not None and t <= end:
            out.append(t)
            previous, now = t, t + timedelta(seconds=1)
        return out

    assert len(fires("check:digits")) == 14
    assert fires("report:pets") == [MONDAY + timedelta(hours=6), MONDAY + timedelta(days=7, hours=6)]
    assert len(fires("ingest")) == 14 * 24 * 4
    assert fires("ingest")[0] == MONDAY + timedelta(minutes=15)


def test_an_unknown_timezone_is_a_config_error():
    with pytest.raises(ConfigError, match=r"schedule\.timezone"):
        build_scheduler(sessionmaker(), make_settings(timezone="Mars/Olympus"))


@pytest.mark.parametrize(
    ("now", "last_report", "expected"),
    [
        pytest.param(MONDAY + timedelta(hours=8), None, ["check:digits", "report:digits"], id="missed-2h-ago-run-now"),
        pytest.param(MONDAY + timedelta(hours=13), None, [], id="missed-beyond-grace-skipped"),
        pytest.param(
            MONDAY + timedelta(hours=8), MONDAY + timedelta(hours=6, seconds=3), ["check:digits"], id="already-ran"
        ),
        pytest.param(
            MONDAY + timedelta(hours=8),
            MONDAY - timedelta(days=7),
            ["check:digits", "report:digits"],
            id="ran-last-week",
        ),
    ],
)
def test_a_restart_near_a_scheduled_run_catches_up(
    database, now: datetime, last_report: datetime | None, expected: list[str]
):
    """Within the misfire grace (6 h), a run missed while no daemon ran happens at start-up."""
    settings = make_settings(database.url, models=MODELS[:1], misfire_grace_seconds=6 * 3600)
    with database.session_factory.begin() as s:
        s.add(JobRun(job="ingest", model=None, started_at=now - timedelta(minutes=5), status="succeeded", counts={}))
        if last_report is not None:
            s.add(JobRun(job="report", model="digits", started_at=last_report, status="succeeded", counts={}))
    scheduler = build_scheduler(database.session_factory, settings, scheduler_cls=BackgroundScheduler)
    caught = catch_up(scheduler, database.session_factory, settings, now)
    # ingest ran 5 minutes ago (every 15): not due; labels never ran: due; check (02:00) and report (Mon 06:00)
    assert caught == ["labels", *expected]
    assert scheduler.get_job("labels").next_run_time == now


# -- run_job: the one entry of the daemon and of `driftkeeper run` --------------------------------


@pytest.mark.parametrize(
    ("drifted", "fail_on_drift", "exit_code"),
    [
        pytest.param(True, True, 3, id="drift-fail-on-drift-exits-3"),
        pytest.param(True, False, 0, id="drift-exits-0"),
        pytest.param(False, True, 0, id="quiet-fail-on-drift-exits-0"),
    ],
)
def test_check_exit_codes(database, fake_jobs: FakeJobs, drifted: bool, fail_on_drift: bool, exit_code: int):
    fake_jobs.drifted = drifted
    settings = make_settings(database.url)
    end = WEDNESDAY
    outcome = run_job(
        "check", database.session_factory, settings, "digits", now=end, fail_on_drift=fail_on_drift, end=end
    )
    assert (outcome.status, outcome.exit_code, outcome.data["drifted"]) == ("succeeded", exit_code, drifted)
    assert fake_jobs.calls == [("check", "digits", {"window_days": None, "end": end, "now": end})]
    assert job_runs(database.session_factory) == [("check", "digits", "succeeded", None)]
    assert leases.current_holder(database.session_factory, job_lease_name("check", "digits")) is None


def test_a_held_lease_is_already_running_exit_1_and_recorded(database, fake_jobs: FakeJobs):
    settings = make_settings(database.url)
    leases.acquire(database.session_factory, "job:check:digits", OTHER, timedelta(minutes=5))
    outcome = run_job("check", database.session_factory, settings, "digits")
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert outcome.error is not None and "check (digits) is already running" in outcome.error and OTHER in outcome.error
    assert fake_jobs.calls == []
    [(job, model, status, error)] = job_runs(database.session_factory)
    assert (job, model, status) == ("check", "digits", "failed") and "already running" in (error or "")
    holder = leases.current_holder(database.session_factory, "job:check:digits")
    assert holder is not None and holder.holder == OTHER  # untouched


def test_a_crash_is_recorded_with_its_traceback_logged_and_the_next_run_works(
    database, fake_jobs: FakeJobs, caplog: pytest.LogCaptureFixture
):
    fake_jobs.fail = {"ingest": 1}
    settings = make_settings(database.url)
    first = run_job("ingest", database.session_factory, settings)
    second = run_job("ingest", database.session_factory, settings)
    assert (first.status, first.exit_code, first.error) == ("failed", 1, "RuntimeError: ingest crashed on purpose")
    assert (second.status, second.exit_code) == ("succeeded", 0)
    assert [r[2] for r in job_runs(database.session_factory)] == ["failed", "succeeded"]
    assert any(r.exc_info and "ingest (all models) failed" in r.getMessage() for r in caplog.records)
    assert leases.current_holder(database.session_factory, "job:ingest:all") is None  # released after the crash


def test_a_failed_retrain_exits_1_and_keeps_its_data(database, fake_jobs: FakeJobs):
    fake_jobs.retrain_decision = "failed"
    outcome = run_job("retrain", database.session_factory, make_settings(database.url), "digits", force=True)
    assert (outcome.status, outcome.exit_code, outcome.data["decision"]) == ("failed", 1, "failed")
    assert "trainer exited with 1" in (outcome.error or "")
    assert fake_jobs.calls[0][2]["force"] is True


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param({"name": "train"}, "unknown job 'train'; known: ingest, labels", id="unknown-job"),
        pytest.param({"name": "check"}, "needs a model", id="check-without-model"),
        pytest.param(
            {"name": "ingest", "week": "2026-W38"}, "no option week; allowed: progress, streams", id="unknown-option"
        ),
    ],
)
def test_misuse_is_a_value_error(call: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        run_job(session_factory=sessionmaker(), settings=make_settings(), **call)


# -- the daemon ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("worthy", "after_check", "expected"),
    [
        pytest.param(True, True, ["check", "retrain"], id="retrain-worthy-runs-retrain"),
        pytest.param(True, False, ["check"], id="retrain-after-check-off"),
        pytest.param(False, True, ["check"], id="quiet-check-no-retrain"),
    ],
)
def test_a_retrain_worthy_check_runs_retrain(
    database, fake_jobs: FakeJobs, worthy: bool, after_check: bool, expected: list[str]
):
    fake_jobs.retrain_worthy = worthy
    runner = JobRunner(database.session_factory, make_settings(database.url, retrain_after_check=after_check))
    outcomes = runner.fire("check", "digits")
    assert [o.job for o in outcomes] == fake_jobs.names() == expected
    assert [r[0] for r in job_runs(database.session_factory)] == expected


def test_a_crashing_job_does_not_stop_the_scheduler(database, fake_jobs: FakeJobs):
    """A real BackgroundScheduler, 1 s interval: the first run crashes, the second still happens."""
    fake_jobs.fail = {"ingest": 1}
    runner = JobRunner(database.session_factory, make_settings(database.url))
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        runner.fire, IntervalTrigger(seconds=1), args=("ingest", None), id="ingest", next_run_time=datetime.now(UTC)
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 15
        while len(job_runs(database.session_factory)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
    runs = job_runs(database.session_factory)
    assert runs[0] == ("ingest", None, "failed", "RuntimeError: ingest crashed on purpose")
    assert runs[1][2] == "succeeded"


def test_the_clock_gives_the_jobs_simulated_time(database, fake_jobs: FakeJobs):
    runner = JobRunner(database.session_factory, make_settings(database.url), clock=lambda: MONDAY)
    runner.fire("report", "pets")
    assert fake_jobs.calls == [  # the last complete week, 2026-W48, which ends on MONDAY
        ("check", "pets", {"window_days": 7, "end": MONDAY, "now": MONDAY}),
        ("report", "pets", {"week": "2026-W48", "now": MONDAY, "evidently": True}),
    ]


def _store_run(session_factory: sessionmaker[Any], model: str, window_end: datetime) -> None:
    with session_factory.begin() as s:
        model_row = repository.ensure_model(s, model, "classification")
        s.add(
            DriftRun(
                model_id=model_row.id,
                version=1,
                window_start=window_end - timedelta(days=7),
                window_end=window_end,
                n_rows=500,
                drifted=False,
                engine="profile",
                created_at=window_end,
            )
        )


@pytest.mark.parametrize(
    ("stored_end", "checked"),
    [
        pytest.param(None, True, id="nothing-stored-checks-the-week-first"),
        pytest.param(MONDAY + timedelta(hours=2), True, id="a-daily-check-is-not-the-weeks"),
        pytest.param(MONDAY, False, id="the-weeks-check-stored-report-only"),
    ],
)
def test_the_report_job_checks_its_week_first_unless_a_check_of_it_is_stored(
    database, fake_jobs: FakeJobs, stored_end: datetime | None, checked: bool
):
    """The report itself only reads: the runner checks the week (window = the ISO week) when no
    drift run ending with the week is stored, and passes the report the same week."""
    if stored_end is not None:
        _store_run(database.session_factory, "pets", stored_end)
    _store_run(database.session_factory, "digits", MONDAY)  # another model's check does not count
    now = MONDAY + timedelta(hours=6)
    outcome = run_job("report", database.session_factory, make_settings(database.url), "pets", now=now)
    assert (outcome.status, outcome.data["week"]) == ("succeeded", "2026-W48")
    week_check = ("check", "pets", {"window_days": 7, "end": MONDAY, "now": now})
    report = ("report", "pets", {"week": "2026-W48", "now": now, "evidently": True})
    assert fake_jobs.calls == ([week_check] if checked else []) + [report]
    assert [r[0] for r in job_runs(database.session_factory)] == ["report"]  # one job run: the report's


def test_a_named_week_is_checked_to_its_end_with_now_no_earlier(database, fake_jobs: FakeJobs):
    run_job("report", database.session_factory, make_settings(database.url), "pets", now=WEDNESDAY, week="2026-W49")
    assert fake_jobs.calls[0] == (
        "check",
        "pets",
        {"window_days": 7, "end": MONDAY + timedelta(days=7), "now": MONDAY + timedelta(days=7)},
    )
    assert fake_jobs.calls[1] == ("report", "pets", {"week": "2026-W49", "now": WEDNESDAY, "evidently": True})


def test_once_runs_every_job(database, fake_jobs: FakeJobs):
    code = serve(database.session_factory, make_settings(database.url), once=True, install_signals=False)
    assert code == 0
    # each report checks its week first: the fake check stores no run
    assert fake_jobs.names() == ["ingest", "ingest", "check", "check", "report", "check", "check", "report"]
    assert [c[2].get("streams") for c in fake_jobs.calls[:2]] == [("predictions",), ("labels",)]  # one stream per job
    assert leases.current_holder(database.session_factory, DAEMON_LEASE) is None


def test_a_second_daemon_exits_with_the_holder_named(database, fake_jobs: FakeJobs):
    leases.acquire(database.session_factory, DAEMON_LEASE, OTHER, timedelta(minutes=2))
    with pytest.raises(LeaseHeldError, match=OTHER):
        serve(database.session_factory, make_settings(database.url), once=True, install_signals=False)
    assert fake_jobs.calls == [] and job_runs(database.session_factory) == []


def test_a_second_daemon_waits_for_the_lease(database, fake_jobs: FakeJobs):
    leases.acquire(database.session_factory, DAEMON_LEASE, OTHER, timedelta(minutes=2))
    settings = make_settings(database.url, models=[])
    codes: list[int] = []

    def second() -> None:
        codes.append(serve(database.session_factory, settings, wait=True, once=True, poll_seconds=0.1))

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.6)
    assert thread.is_alive() and fake_jobs.calls == []  # still waiting, nothing run twice
    leases.release(database.session_factory, DAEMON_LEASE, OTHER)
    thread.join(timeout=20)
    assert codes == [0] and fake_jobs.names() == ["ingest", "ingest"]


def test_stop_while_waiting_returns_0(database, fake_jobs: FakeJobs):
    leases.acquire(database.session_factory, DAEMON_LEASE, OTHER, timedelta(minutes=2))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    code = serve(
        database.session_factory,
        make_settings(database.url),
        wait=True,
        poll_seconds=0.1,
        stop=stop,
        install_signals=False,
    )
    assert code == 0 and fake_jobs.calls == []


def test_stopping_lets_the_job_in_progress_finish_and_releases_the_lease(database, fake_jobs: FakeJobs):
    fake_jobs.delay = 1.5
    settings = make_settings(database.url, models=[])
    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(serve(database.session_factory, settings, stop=stop)))
    thread.start()
    assert fake_jobs.started.wait(20), "the catch-up run of ingest did not start"
    assert leases.current_holder(database.session_factory, DAEMON_LEASE) is not None
    stop.set()  # what SIGTERM does
    thread.join(timeout=20)
    assert codes == [0]
    runs = job_runs(database.session_factory)
    assert runs and all(status == "succeeded" for _, _, status, _ in runs)  # finished, not interrupted
    assert leases.current_holder(database.session_factory, DAEMON_LEASE) is None


def test_a_daemon_that_loses_its_lease_stops_with_exit_1(database, fake_jobs: FakeJobs):
    settings = make_settings(database.url, models=[], daemon_lease_seconds=10)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(serve(database.session_factory, settings)))
    thread.start()
    assert fake_jobs.started.wait(20)
    me = leases.current_holder(database.session_factory, DAEMON_LEASE)
    assert me is not None
    leases.release(database.session_factory, DAEMON_LEASE, me.holder)  # as if it had expired and been taken
    leases.acquire(database.session_factory, DAEMON_LEASE, OTHER, timedelta(minutes=2))
    thread.join(timeout=20)
    assert codes == [1]
    holder = leases.current_holder(database.session_factory, DAEMON_LEASE)
    assert holder is not None and holder.holder == OTHER


def test_a_stopping_runner_starts_nothing(database, fake_jobs: FakeJobs):
    stopping = threading.Event()
    stopping.set()
    runner = JobRunner(database.session_factory, make_settings(database.url), stopping=stopping)
    assert runner.once() == []
    assert fake_jobs.calls == [] and job_runs(database.session_factory) == []
