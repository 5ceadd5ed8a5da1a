"""The scheduler daemon (``driftkeeper serve``) and the one entry every job run goes through.

:func:`run_job` is used by the daemon, by ``driftkeeper run`` (cron, Airflow, Kubernetes) and by
tests alike: it takes the job's lease ``job:<name>:<model or all>`` so that the same job never
runs twice at once, records the run in the job-run history, and turns any error into a failed
:class:`JobOutcome` (exit code 1) with the traceback logged.

:func:`build_scheduler` wires the APScheduler 3 jobs from ``settings.schedule`` (explicit ids,
``coalesce``, ``max_instances=1``, the configured misfire grace); :func:`serve` holds the
``daemon`` lease so that only one daemon does the work, catches up on runs missed while it was
down (within the misfire grace, from the job-run history), and on SIGTERM/SIGINT lets the job in
progress finish, releases the lease and returns 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import ConfigError, DriftkeeperError, LeaseHeldError, TrainingError
from jobs.app import EXIT_DRIFT, EXIT_ERROR, EXIT_OK
from jobs.config import Settings
from jobs.runs import recorded_run
from storage import leases
from storage.models import JobRun

log = logging.getLogger(__name__)

JOB_NAMES = ("ingest", "labels", "check", "report", "retrain")
MODEL_JOBS = ("check", "report", "retrain")  # these need --model
DAEMON_LEASE = "daemon"
HEARTBEAT_ID = "daemon-heartbeat"
_OPTIONS = {
    "ingest": (),
    "labels": (),
    "check": ("window_days", "end"),
    "report": ("week",),
    "retrain": ("force", "dry_run"),
}

Clock = Callable[[], datetime]
Factory = sessionmaker[Session]
Streams = tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """How one run of a job ended; ``status`` is what the job-run history records."""

    job: str
    model: str | None
    status: str  # "succeeded" | "failed"
    exit_code: int
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class _Done:
    data: dict[str, Any]
    counts: dict[str, Any]
    drifted: bool = False
    failure: str | None = None  # the job ran but reports a failure (a retrain whose trainer failed)


def job_lease_name(name: str, model: str | None) -> str:
    return f"job:{name}:{model or 'all'}"


def run_job(
    name: str,
    session_factory: Factory,
    settings: Settings,
    model: str | None = None,
    *,
    now: datetime | None = None,
    fail_on_drift: bool = False,
    **options: Any,
) -> JobOutcome:
    """Run job ``name`` once under its lease, recorded; never raises for the job's own errors.

    Exit codes: 0 done, 1 error (including "already running"), 3 drift when ``fail_on_drift``.
    Unknown job names, options, or a model job without a model are programming errors (ValueError).
    """
    if name not in _OPTIONS:
        raise ValueError(f"unknown job {name!r}; known: {', '.join(JOB_NAMES)}")
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[name])) or "none"
        raise ValueError(f"job {name!r} takes no option {', '.join(unknown)}; allowed: {allowed}")
    if name in MODEL_JOBS and model is None:
        raise ValueError(f"job {name!r} needs a model")
    what = f"{name} ({model or 'all models'})"
    lease = job_lease_name(name, model)
    ttl = timedelta(seconds=settings.schedule.daemon_lease_seconds)
    done: _Done | None = None
    busy = False
    try:
        with recorded_run(session_factory, name, model) as record:
            try:
                with renewing_lease(session_factory, lease, ttl):
                    done = _RUNNERS[name](session_factory, settings, model, now, **options)
            except LeaseHeldError as exc:
                if exc.name != lease:
                    raise
                busy = True
                raise DriftkeeperError(f"{what} is already running: {exc}") from exc
            record.counts = done.counts
            if done.failure is not None:
                raise TrainingError(done.failure)
    except DriftkeeperError as exc:
        if busy:
            log.warning("%s", exc)
        else:
            log.error("%s failed: %s", what, exc, exc_info=exc)
        data = done.data if done is not None else {}
        return JobOutcome(job=name, model=model, status="failed", exit_code=EXIT_ERROR, data=data, error=str(exc))
    except Exception as exc:
        log.error("%s failed", what, exc_info=exc)
        error = f"{type(exc).__name__}: {exc}"
        return JobOutcome(job=name, model=model, status="failed", exit_code=EXIT_ERROR, error=error)
    exit_code = EXIT_DRIFT if fail_on_drift and done.drifted else EXIT_OK
    log.info("%s succeeded%s", what, f" {done.counts}" if done.counts else "")
    return JobOutcome(job=name, model=model, status="succeeded", exit_code=exit_code, data=done.data)


@contextmanager
def renewing_lease(session_factory: Factory, name: str, ttl: timedelta, holder: str | None = None) -> Iterator[str]:
    """Hold lease ``name`` for the block, renewed every ``ttl / 3`` so a long job keeps it.

    Raises :class:`LeaseHeldError` when someone else holds it. A holder that dies leaves it to expire.
    """
    with leases.held(session_factory, name, ttl, holder) as me:
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(ttl.total_seconds() / 3):
                try:
                    if not leases.renew(session_factory, name, me, ttl):
                        log.error("lease %r was lost (expired and taken by another process)", name)
                        return
                except Exception:
                    log.exception("could not renew lease %r; retrying", name)

        keeper = threading.Thread(target=keep, name=f"lease {name}", daemon=True)
        keeper.start()
        try:
            yield me
        finally:
            stop.set()
            keeper.join()


# -- the jobs, each a thin adapter over its module (imported lazily: --help stays fast) ----------


def _ingest(sf: Factory, settings: Settings, model: str | None, now: datetime | None, streams: Streams = None) -> _Done:
    from jobs.ingest.run import ingest

    reports = ingest(sf, settings, model, streams=streams or ("predictions", "labels"))
    counts = {k: sum(getattr(r, k) for r in reports) for k in ("inserted", "quarantined", "duplicates")}
    return _Done(data={"runs": [r.to_dict() for r in reports]}, counts=counts)


def _labels(sf: Factory, settings: Settings, model: str | None, now: datetime | None) -> _Done:
    return _ingest(sf, settings, model, now, streams=("labels",))


def _check(
    sf: Factory,
    settings: Settings,
    model: str,
    now: datetime | None,
    window_days: float | None = None,
    end: datetime | None = None,
) -> _Done:
    from jobs.check import check

    reports = check(sf, settings, model, window_days=window_days, end=end, now=now)
    drifted = any(r.drifted for r in reports)
    worthy = any(r.retrain_worthy for r in reports)
    data = {"model": model, "drifted": drifted, "retrain_worthy": worthy, "runs": [r.to_dict() for r in reports]}
    counts = {"runs": sum(r.run_id is not None for r in reports), "drifted": sum(r.drifted for r in reports)}
    return _Done(data=data, counts=counts, drifted=drifted)


def _report(sf: Factory, settings: Settings, model: str, now: datetime | None, week: str | None = None) -> _Done:
    from jobs.report import weekly_report

    data = weekly_report(sf, settings, model, week=week, now=now).to_dict()
    return _Done(data=data, counts={"week": data.get("week"), "status": data.get("status")})


def _retrain(
    sf: Factory, settings: Settings, model: str, now: datetime | None, force: bool = False, dry_run: bool = False
) -> _Done:
    from jobs.retrain import retrain

    outcome = retrain(sf, settings, model, force=force, dry_run=dry_run, now=now)
    failure = None
    if outcome.decision == "failed":
        failure = f"retrain of {model} failed: " + ("; ".join(outcome.reasons) or "see the retrain run")
    counts = {"decision": outcome.decision, "version": outcome.version}
    return _Done(data=outcome.to_dict(), counts=counts, failure=failure)


_RUNNERS: dict[str, Callable[..., _Done]] = {
    "ingest": _ingest,
    "labels": _labels,
    "check": _check,
    "report": _report,
    "retrain": _retrain,
}


# -- the daemon ---------------------------------------------------------------------------------


class JobRunner:
    """What the scheduler calls: every job through :func:`run_job`, never raising.

    After a retrain-worthy check (and ``schedule.retrain_after_check``) it runs the model's
    retrain, whose own policy decides; once ``stopping`` is set it starts nothing new.
    """

    def __init__(
        self,
        session_factory: Factory,
        settings: Settings,
        clock: Clock | None = None,
        stopping: threading.Event | None = None,
    ):
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.stopping = stopping or threading.Event()

    def fire(self, name: str, model: str | None = None) -> list[JobOutcome]:
        """Run ``name`` (and a retrain a check asks for); the outcomes, empty when stopping."""
        outcomes: list[JobOutcome] = []
        try:
            if self.stopping.is_set():
                log.info("%s (%s) not started: the daemon is stopping", name, model or "all models")
                return outcomes
            now = self.clock() if self.clock is not None else None
            outcomes.append(run_job(name, self.session_factory, self.settings, model, now=now))
            checked = outcomes[-1]
            if (
                name == "check"
                and checked.status == "succeeded"
                and checked.data.get("retrain_worthy")
                and self.settings.schedule.retrain_after_check
                and not self.stopping.is_set()
            ):
                log.info("check of %s is retrain-worthy: running retrain (its policy decides)", model)
                outcomes.append(run_job("retrain", self.session_factory, self.settings, model, now=now))
        except Exception:  # run_job catches the job's errors; this is the last guard of the daemon
            log.exception("%s (%s) could not be run", name, model or "all models")
        return outcomes

    def once(self) -> list[JobOutcome]:
        """Every job once, in the order a fresh deployment needs them."""
        outcomes = self.fire("ingest") + self.fire("labels")
        for model in self.settings.models:
            outcomes += self.fire("check", model.name) + self.fire("report", model.name)
        return outcomes


def _timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"schedule.timezone: unknown time zone {name!r}; e.g. 'UTC' or 'Europe/Paris'") from exc


def build_scheduler(
    session_factory: Factory,
    settings: Settings,
    *,
    scheduler_cls: type[BaseScheduler] = BlockingScheduler,
    clock: Clock | None = None,
    runner: JobRunner | None = None,
) -> BaseScheduler:
    """The scheduler with one job per (job, model): ``ingest``, ``labels``, ``check:<model>``, ``report:<model>``.

    Nothing is started; ``clock`` (simulated time) gives the ``now`` the jobs see.
    """
    schedule = settings.schedule
    tz = _timezone(schedule.timezone)
    runner = runner or JobRunner(session_factory, settings, clock)
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": schedule.misfire_grace_seconds}
    scheduler = scheduler_cls(timezone=tz, job_defaults=defaults)
    planned: list[tuple[str, str, str | None, BaseTrigger]] = [
        ("ingest", "ingest", None, IntervalTrigger(minutes=schedule.ingest_every_minutes, timezone=tz)),
        ("labels", "labels", None, IntervalTrigger(minutes=schedule.labels_every_minutes, timezone=tz)),
    ]
    for model in settings.models:
        planned.append(
            (f"check:{model.name}", "check", model.name, CronTrigger.from_crontab(schedule.check_cron, timezone=tz))
        )
        planned.append(
            (f"report:{model.name}", "report", model.name, CronTrigger.from_crontab(schedule.report_cron, timezone=tz))
        )
    for job_id, name, model_name, trigger in planned:
        scheduler.add_job(
            runner.fire, trigger, args=(name, model_name), id=job_id, name=job_id, replace_existing=True, **defaults
        )
    return scheduler


def missed_since(trigger: BaseTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The fire time a daemon started at ``now`` has missed, if any, within ``grace``.

    Cron: the first fire time in ``(now - grace, now]``. Interval: one interval ago (a job that
    has not run for a whole interval is due). None: nothing missed.
    """
    if isinstance(trigger, IntervalTrigger):
        return now - trigger.interval
    first = trigger.get_next_fire_time(None, now - grace)
    return first if first is not None and first <= now else None


def catch_up(scheduler: BaseScheduler, session_factory: Factory, settings: Settings, now: datetime) -> list[str]:
    """Run at once (``next_run_time=now``) the jobs missed while no daemon ran; their ids.

    A missed fire time counts as done when the job-run history holds a run of that job started
    after it (by a daemon or by ``driftkeeper run``). Call before ``start()``.
    """
    grace = timedelta(seconds=settings.schedule.misfire_grace_seconds)
    due: list[str] = []
    with session_factory() as session:
        for job in scheduler.get_jobs():
            if job.id == HEARTBEAT_ID:
                continue
            missed = missed_since(job.trigger, now, grace)
            if missed is None:
                continue
            name, model = job.args
            last = session.scalar(
                select(func.max(JobRun.started_at)).where(
                    JobRun.job == name, JobRun.model.is_(None) if model is None else JobRun.model == model
                )
            )
            if last is None or last < missed:
                job.modify(next_run_time=now)
                due.append(job.id)
    if due:
        log.info("catching up on missed runs: %s", ", ".join(due))
    return due


def serve(
    session_factory: Factory,
    settings: Settings,
    *,
    wait: bool = False,
    once: bool = False,
    poll_seconds: float | None = None,
    stop: threading.Event | None = None,
    clock: Clock | None = None,
    install_signals: bool = True,
) -> int:
    """Run the daemon until SIGTERM/SIGINT (or ``stop``), or every job once with ``once``; the exit code.

    Only the holder of the ``daemon`` lease works: without ``wait`` a second daemon raises
    :class:`LeaseHeldError`; with it, it polls every ``poll_seconds`` until the lease is free.
    """
    stop = stop or threading.Event()
    if not log.isEnabledFor(logging.DEBUG):  # APScheduler logs every run at INFO (the heartbeat too); ours suffice
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    ttl = timedelta(seconds=settings.schedule.daemon_lease_seconds)
    poll = poll_seconds if poll_seconds is not None else min(ttl.total_seconds() / 4, 15.0)
    holder = leases.holder_id()
    with _stop_on_signals(stop, install_signals):
        if not _take_daemon_lease(session_factory, holder, ttl, wait=wait, poll=poll, stop=stop):
            log.info("stopped while waiting for the daemon lease")
            return EXIT_OK
        log.info("daemon %s holds the %r lease", holder, DAEMON_LEASE)
        try:
            runner = JobRunner(session_factory, settings, clock, stopping=stop)
            if once:
                outcomes = runner.once()
                return EXIT_ERROR if any(o.status == "failed" for o in outcomes) else EXIT_OK
            return _run_daemon(session_factory, settings, runner, holder, ttl, stop)
        finally:
            try:
                leases.release(session_factory, DAEMON_LEASE, holder)
                log.info("daemon %s released the %r lease", holder, DAEMON_LEASE)
            except Exception:
                log.exception("could not release the daemon lease (it expires in %s)", ttl)


def _run_daemon(
    session_factory: Factory, settings: Settings, runner: JobRunner, holder: str, ttl: timedelta, stop: threading.Event
) -> int:
    lost = threading.Event()

    def heartbeat() -> None:
        try:
            if leases.renew(session_factory, DAEMON_LEASE, holder, ttl) or leases.acquire(
                session_factory, DAEMON_LEASE, holder, ttl
            ):
                return
            log.error("the daemon lease was taken by another process: stopping")
            lost.set()
            stop.set()
        except Exception:  # a database hiccup: retry at the next beat, before the lease expires
            log.exception("could not renew the daemon lease")

    scheduler = build_scheduler(session_factory, settings, scheduler_cls=BackgroundScheduler, runner=runner)
    beat = max(ttl.total_seconds() / 3, 1.0)
    scheduler.add_executor(ThreadPoolExecutor(1), HEARTBEAT_ID)  # never queued behind busy jobs
    scheduler.add_job(
        heartbeat,
        IntervalTrigger(seconds=beat),
        id=HEARTBEAT_ID,
        name=HEARTBEAT_ID,
        executor=HEARTBEAT_ID,
        coalesce=True,
        max_instances=1,
    )
    catch_up(scheduler, session_factory, settings, datetime.now(UTC))
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("scheduled %s (%s), next run %s", job.id, job.trigger, job.next_run_time)
    while not stop.wait(1.0):
        pass
    log.info("stopping: no new runs; waiting for the job in progress")
    scheduler.shutdown(wait=True)
    log.info("daemon stopped")
    return EXIT_ERROR if lost.is_set() else EXIT_OK


def _take_daemon_lease(
    session_factory: Factory, holder: str, ttl: timedelta, *, wait: bool, poll: float, stop: threading.Event
) -> bool:
    """True once the lease is ours; False if stopped while waiting; LeaseHeldError without ``wait``."""
    announced = False
    while not stop.is_set():
        if leases.acquire(session_factory, DAEMON_LEASE, holder, ttl):
            return True
        other = leases.current_holder(session_factory, DAEMON_LEASE)
        if not wait:
            raise LeaseHeldError(
                DAEMON_LEASE,
                other.holder if other else "another daemon",
                other.expires_at.isoformat() if other else None,
            )
        if not announced:
            log.info("another daemon (%s) is running; waiting for it to stop", other.holder if other else "?")
            announced = True
        stop.wait(poll)
    return False


@contextmanager
def _stop_on_signals(stop: threading.Event, install: bool) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (only from the main thread, where Python allows handlers)."""
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s received", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
