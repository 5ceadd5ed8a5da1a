"""What a job's outcome says to alerting: signals, derived without any state or I/O.

A :class:`Signal` says "this condition holds now" (``active``) or "it is clear now" about one
alert identity (its ``key``); a :class:`Clear` says every firing alert of a kind and model is
clear (a check that is not blind clears the blind windows of every week). Whether a signal
becomes a message depends on what was alerted before: see :mod:`jobs.alerts.rules`.

- check: per checked window, a verdict signal (level ok/watch/act) for the model and ISO week of
  the window's end, and a blind signal when the window had no usable rows of the champion;
- retrain: one event per retrain run that promoted, rejected or failed (skipped says nothing);
- any job: failed, or succeeded (which clears the failure of that job and model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs.alerts.alert import ALERT_NAMES, AlertKind, clean_label, clean_text, group_key
from jobs.report.weeks import iso_week
from storage.statuses import JobStatus, RetrainDecision, VerdictLevel

if TYPE_CHECKING:
    from jobs.runner.execute import JobOutcome

RETRAIN_EVENTS = tuple(str(d) for d in RetrainDecision.finished())  # promoted, rejected, failed, aborted
_SEVERITY = {VerdictLevel.OK: "info", VerdictLevel.WATCH: "warning", VerdictLevel.ACT: "critical"}
_MAX_REASONS = 10


@dataclass(frozen=True, kw_only=True)
class Signal:
    key: str
    kind: AlertKind
    model: str | None
    group: str
    active: bool
    rank: int = 1
    once: bool = False  # an event: sent once per key, never resolved
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Clear:
    """Every firing alert of ``kind`` for ``model`` is clear now."""

    kind: AlertKind
    model: str


def signals_of(outcome: JobOutcome, now: datetime) -> tuple[list[Signal], list[Clear]]:
    """The signals of one job outcome (``now``: the week of alerts that are not about a window)."""
    signals: list[Signal] = []
    clears: list[Clear] = []
    data = outcome.data or {}
    retrain_event = outcome.job == "retrain" and str(data.get("decision")) in RETRAIN_EVENTS
    if outcome.job == "check":
        for run in data.get("runs") or ():
            if isinstance(run, dict):
                found, clear = _check_run(run, outcome.model)
                signals += found
                clears += clear
    if retrain_event:
        signals.append(_retrain(data, outcome.model, now))
    if outcome.status in (JobStatus.FAILED, JobStatus.SUCCEEDED) and not retrain_event:
        signals.append(_job(outcome, now))  # a retrain event already says that a retrain failed
    return signals, clears


def _labels(kind: AlertKind, **extra: object) -> dict[str, str]:
    labels = {"alertname": ALERT_NAMES[kind]}
    labels.update({k: clean_label(v) for k, v in extra.items() if v is not None})
    return labels


def _model_of(data: dict[str, Any], fallback: str | None) -> str | None:
    value = data.get("model", fallback)
    return None if value is None else clean_label(value)


def _reasons(data: dict[str, Any]) -> str:
    reasons = [clean_label(r) for r in (data.get("reasons") or ())][:_MAX_REASONS]
    return clean_text("\n".join(f"- {r}" for r in reasons)) if reasons else ""


def _check_run(run: dict[str, Any], fallback: str | None) -> tuple[list[Signal], list[Clear]]:
    model = _model_of(run, fallback)
    try:
        end = datetime.fromisoformat(str(run["window_end"]))
    except (KeyError, ValueError):
        return [], []
    week = iso_week(end)
    group = group_key(model, week)
    window = f"{run.get('window_start', '?')} to {run.get('window_end')}"
    signals: list[Signal] = []
    clears: list[Clear] = []
    blind = run.get("blind")
    if isinstance(blind, dict):
        reason = clean_label(blind.get("reason") or "no usable rows")
        signals.append(
            Signal(
                key=f"blind:{model}:{week}",
                kind=AlertKind.BLIND,
                model=model,
                group=group,
                active=True,
                labels=_labels(AlertKind.BLIND, model=model, week=week, severity="warning"),
                annotations={
                    "summary": clean_label(f"{model} is blind in {week}: {reason}"),
                    "description": clean_text(
                        f"window {window}: {blind.get('accepted', 0)} rows accepted, "
                        f"{blind.get('quarantined', 0)} quarantined"
                        + (f" (mostly: {clean_label(blind['main_reason'])})" if blind.get("main_reason") else "")
                    ),
                },
            )
        )
    elif model is not None:
        clears.append(Clear(kind=AlertKind.BLIND, model=model))
    if run.get("skipped") or blind:
        return signals, clears  # no verdict of a window that was not compared
    verdict = run.get("verdict")
    level = VerdictLevel.stored(
        verdict.get("level") if isinstance(verdict, dict) else None,
        drifted=bool(run.get("drifted")),
        retrain_worthy=bool(run.get("retrain_worthy")),
    )
    version = run.get("version")
    description = f"window {window}, version {version}, {run.get('n_rows', '?')} rows"
    reasons = _reasons(run)
    signals.append(
        Signal(
            key=f"verdict:{model}:{week}",
            kind=AlertKind.VERDICT,
            model=model,
            group=group,
            active=level != VerdictLevel.OK,
            rank=level.rank,
            labels=_labels(AlertKind.VERDICT, model=model, week=week, level=level, severity=_SEVERITY[level]),
            annotations={
                "summary": clean_label(f"{model} {week}: {level}"),
                "description": clean_text(description + (f"\n{reasons}" if reasons else "")),
            },
        )
    )
    return signals, clears


def _retrain(data: dict[str, Any], fallback: str | None, now: datetime) -> Signal:
    model = _model_of(data, fallback)
    decision = clean_label(data.get("decision"))
    run_id = data.get("run_id")
    version = data.get("version")
    reasons = _reasons(data)
    severity = "critical" if decision in (RetrainDecision.FAILED, RetrainDecision.ABORTED) else "info"
    return Signal(
        key=f"retrain:{model}:{run_id if run_id is not None else now.isoformat()}",
        kind=AlertKind.RETRAIN,
        model=model,
        group=group_key(model, iso_week(now)),
        active=True,
        once=True,
        labels=_labels(AlertKind.RETRAIN, model=model, decision=decision, version=version, severity=severity),
        annotations={
            "summary": clean_label(f"{model}: retrain {decision}" + (f" (version {version})" if version else "")),
            "description": reasons or clean_text(f"retrain run {run_id}"),
        },
    )


def _job(outcome: JobOutcome, now: datetime) -> Signal:
    model = None if outcome.model is None else clean_label(outcome.model)
    job = clean_label(outcome.job)
    failed = outcome.status == JobStatus.FAILED
    return Signal(
        key=f"job:{job}:{model or 'all'}",
        kind=AlertKind.JOB_FAILED,
        model=model,
        group=group_key(model, iso_week(now)),
        active=failed,
        labels=_labels(AlertKind.JOB_FAILED, job=job, model=model or "all", severity="critical"),
        annotations={
            "summary": clean_label(f"job {job} ({model or 'all models'}) failed"),
            "description": clean_text(outcome.error or f"exit code {outcome.exit_code}"),
        },
    )
