"""The scheduler daemon (``driftkeeper serve``): the one module with APScheduler wiring.

Every run goes through :func:`jobs.runner.execute.run_job`, as ``driftkeeper run`` does.

:func:`build_scheduler` wires the APScheduler 3 jobs from ``settings.schedule`` (explicit ids,
``coalesce``, ``max_instances=1``, the configured misfire grace); :func:`serve` holds the
``daemon`` lease so that only one daemon does the work, catches up on runs missed while it was
down (within the misfire grace, from the job-run history), and on SIGTERM/SIGINT lets the job in
progress finish, releases the lease and returns 0. While the daemon runs (not with ``once``) it
serves Prometheus' ``/metrics`` on ``metrics.address:metrics.port`` unless ``metrics.enabled`` is
false (see :mod:`jobs.metrics.export`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import FrameType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import ConfigError, LeaseHeldError
from jobs.config import Settings
from jobs.metrics.export import metrics_endpoint
from jobs.runner.execute import JobOutcome, run_job
from jobs.runner.exit_codes import EXIT_ERROR, EXIT_OK
from storage import job_runs, leases
from storage.clock import wall_clock
from storage.statuses import JobStatus

log = logging.getLogger(__name__)

DAEMON_LEASE = "daemon"
HEARTBEAT_ID = "daemon-heartbeat"

Clock = Callable[[], datetime]
Factory = sessionmaker[Session]


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
                and checked.status == JobStatus.SUCCEEDED
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

    Nothing is started; ``clock`` (simulated time) gives the ``now`` the jobs see, and the interval
    triggers count from it: their first run is one interval after ``clock()``. Without a clock they
    count from the wall clock, as a daemon started now does.
    """
    schedule = settings.schedule
    tz = _timezone(schedule.timezone)
    runner = runner or JobRunner(session_factory, settings, clock)
    started = clock() if clock is not None else wall_clock()

    def every(minutes: int) -> IntervalTrigger:
        interval = timedelta(minutes=minutes)
        return IntervalTrigger(minutes=minutes, start_date=started + interval, timezone=tz)

    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": schedule.misfire_grace_seconds}
    scheduler = scheduler_cls(timezone=tz, job_defaults=defaults)
    planned: list[tuple[str, str, str | None, BaseTrigger]] = [
        ("ingest", "ingest", None, every(schedule.ingest_every_minutes)),
        ("labels", "labels", None, every(schedule.labels_every_minutes)),
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
            last = job_runs.last_started(session, name, model)
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
                return EXIT_ERROR if any(o.status == JobStatus.FAILED for o in outcomes) else EXIT_OK
            with metrics_endpoint(session_factory, settings):
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

    now = wall_clock()  # the daemon's scheduler runs in real time (the runner's clock is what jobs see)
    scheduler = build_scheduler(
        session_factory, settings, scheduler_cls=BackgroundScheduler, clock=lambda: now, runner=runner
    )
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
    catch_up(scheduler, session_factory, settings, now)
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
