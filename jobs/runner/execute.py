"""The one entry every job run goes through: the daemon, ``driftkeeper run`` and tests alike.

:func:`run_job` takes the job's lease ``job:<name>:<model or all>`` so that the same job never
runs twice at once (a daemon and a cron job included), records the run in the job-run history,
and turns any error into a failed :class:`JobOutcome` (exit code 1) with the traceback logged. A
database error becomes a :class:`~drift.errors.StorageError`, whose one line (the database named,
its password masked) is the outcome's and the record's error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from drift.errors import DriftkeeperError, LeaseHeldError, SourceRejectedError, TrainingError
from jobs.config import Settings
from jobs.report.weeks import last_complete_week, week_window
from jobs.runner.exit_codes import EXIT_BLIND, EXIT_DRIFT, EXIT_ERROR, EXIT_OK, EXIT_REJECTED
from jobs.runner.progress import Progress
from jobs.runner.runs import recorded_run
from storage import drift_runs, job_runs
from storage.clock import wall_clock
from storage.errors import translate
from storage.leases import renewing_lease
from storage.statuses import JobStatus, RetrainDecision

log = logging.getLogger(__name__)

JOB_NAMES = ("ingest", "labels", "check", "report", "retrain")
MODEL_JOBS = ("check", "report", "retrain")  # these need --model
_OPTIONS = {
    "ingest": ("streams", "progress"),
    "labels": ("progress",),
    "check": ("window_days", "end"),
    "report": ("week", "evidently"),
    "retrain": ("force", "dry_run"),
}

Factory = sessionmaker[Session]
Streams = tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """How one run of a job ended; ``status`` is what the job-run history records."""

    job: str
    model: str | None
    status: JobStatus
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
    blind: bool = False
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
    fail_on_blind: bool = True,
    **options: Any,
) -> JobOutcome:
    """Run job ``name`` once under its lease, recorded; never raises for the job's own errors.

    Exit codes: 0 done, 1 error (including "already running"), 3 drift when ``fail_on_drift``,
    4 a source rejected (the ingest circuit breaker), 5 a blind check window when ``fail_on_blind``.
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
    outcome = _run_recorded(name, session_factory, settings, model, now, fail_on_drift, fail_on_blind, options)
    _notify(session_factory, settings, outcome, now)
    return outcome


def _mark_killed(session_factory: Factory, name: str, model: str | None, current: int) -> None:
    """Earlier runs of this job still 'running' died with their process: this run holds the
    job's lease now, so none of them is alive. They are marked 'killed'."""
    with session_factory.begin() as session:
        killed = job_runs.mark_killed(session, name, model, keep=current, finished_at=wall_clock())
    if killed:
        log.warning("%s (%s): %d earlier run(s) died without finishing; marked killed", name, model or "all", killed)


def _notify(session_factory: Factory, settings: Settings, outcome: JobOutcome, now: datetime | None) -> None:
    """Alerts about the outcome (a rising verdict, a retrain, a failure, a blind window); they
    never fail the job (the alerts record their own failed deliveries)."""
    from jobs.alerts.notify import notify_outcome

    try:
        notify_outcome(session_factory, settings, outcome, now=now)
    except Exception:
        log.exception("alerts about %s (%s) could not be sent", outcome.job, outcome.model or "all models")


def _run_recorded(
    name: str,
    session_factory: Factory,
    settings: Settings,
    model: str | None,
    now: datetime | None,
    fail_on_drift: bool,
    fail_on_blind: bool,
    options: dict[str, Any],
) -> JobOutcome:
    what = f"{name} ({model or 'all models'})"
    lease = job_lease_name(name, model)
    ttl = timedelta(seconds=settings.schedule.daemon_lease_seconds)
    done: _Done | None = None
    busy = False
    try:
        # a database error, of the job or of its record, ends as StorageError's one line (password masked)
        with translate(session_factory), recorded_run(session_factory, name, model) as record:
            try:
                with translate(session_factory), renewing_lease(session_factory, lease, ttl):
                    _mark_killed(session_factory, name, model, record.id)
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
        code = EXIT_REJECTED if isinstance(exc, SourceRejectedError) else EXIT_ERROR
        return JobOutcome(job=name, model=model, status=JobStatus.FAILED, exit_code=code, data=data, error=str(exc))
    except Exception as exc:
        log.error("%s failed", what, exc_info=exc)
        error = f"{type(exc).__name__}: {exc}"
        return JobOutcome(job=name, model=model, status=JobStatus.FAILED, exit_code=EXIT_ERROR, error=error)
    exit_code = EXIT_OK
    if fail_on_blind and done.blind:
        exit_code = EXIT_BLIND
    elif fail_on_drift and done.drifted:
        exit_code = EXIT_DRIFT
    log.info("%s succeeded%s", what, f" {done.counts}" if done.counts else "")
    return JobOutcome(job=name, model=model, status=JobStatus.SUCCEEDED, exit_code=exit_code, data=done.data)


# -- the jobs, each a thin adapter over its module (imported lazily: --help stays fast) ----------


def _ingest(
    sf: Factory,
    settings: Settings,
    model: str | None,
    now: datetime | None,
    streams: Streams = None,
    progress: Progress | None = None,
) -> _Done:
    from jobs.ingest.run import ingest

    # predictions only: labels are their own job, so the two never contend for a stream's lease
    reports = ingest(sf, settings, model, streams=streams or ("predictions",), progress=progress)
    counts = {k: sum(getattr(r, k) for r in reports) for k in ("inserted", "quarantined", "duplicates")}
    return _Done(data={"runs": [r.to_dict() for r in reports]}, counts=counts)


def _labels(
    sf: Factory, settings: Settings, model: str | None, now: datetime | None, progress: Progress | None = None
) -> _Done:
    return _ingest(sf, settings, model, now, streams=("labels",), progress=progress)


def _check(
    sf: Factory,
    settings: Settings,
    model: str,
    now: datetime | None,
    window_days: float | None = None,
    end: datetime | None = None,
) -> _Done:
    from jobs.check.job import check
    from jobs.check.revise import revise_recent_weeks

    now = now or wall_clock()
    reports = check(sf, settings, model, window_days=window_days, end=end, now=now)
    drifted = any(r.drifted for r in reports)
    # past weeks whose late labels arrived: checked again, and a retrain-worthy one counts
    revised = revise_recent_weeks(sf, settings, model, end=end or now, now=now)
    worthy = any(r.retrain_worthy for r in reports + revised)
    blind = any(r.blind is not None for r in reports)  # of the window checked now
    reports += revised
    data = {
        "model": model,
        "drifted": drifted,
        "retrain_worthy": worthy,
        "blind": blind,
        "runs": [r.to_dict() for r in reports],
    }
    counts = {
        "runs": sum(r.run_id is not None for r in reports),
        "drifted": sum(r.drifted for r in reports),
        "blind": int(blind),
        "revised": sum(r.revision is not None for r in reports),
    }
    return _Done(data=data, counts=counts, drifted=drifted, blind=blind)


def _report(
    sf: Factory,
    settings: Settings,
    model: str,
    now: datetime | None,
    week: str | None = None,
    evidently: bool = True,
) -> _Done:
    """Check the week first when no drift run of it is stored, then write its report (which only reads)."""
    from jobs.check.job import check
    from jobs.report.job import stale_weeks, weekly_report

    now = now or wall_clock()
    week = week or last_complete_week(now)
    _, end = week_window(week)
    with sf() as session:
        checked = drift_runs.has_run_ending(session, model, end)
    if not checked:  # check the week now, so that the report shows its figures
        check(sf, settings, model, window_days=7, end=end, now=max(now, end))
    data = weekly_report(sf, settings, model, week=week, now=now, evidently=evidently).to_dict()
    rewritten = []
    for past in stale_weeks(sf, settings, model, week):  # revised by late labels since written
        rewritten.append(weekly_report(sf, settings, model, week=past, now=now, evidently=evidently).to_dict())
    data["rewritten"] = rewritten
    counts = {"week": data.get("week"), "status": data.get("status"), "rewritten": len(rewritten)}
    return _Done(data=data, counts=counts)


def _retrain(
    sf: Factory, settings: Settings, model: str, now: datetime | None, force: bool = False, dry_run: bool = False
) -> _Done:
    from jobs.retrain.job import retrain

    outcome = retrain(sf, settings, model, force=force, dry_run=dry_run, now=now)
    failure = None
    if outcome.decision == RetrainDecision.FAILED:
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
