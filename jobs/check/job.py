"""The check job: compare a window of each model version's logs with that version's reference.

The window's profile comes from :mod:`jobs.check.windows` (daily profiles, merged). All of it
is computed in a read-only session; the day profiles, the drift run and its flagged predictions
are then written in one short transaction, so that on SQLite a check never holds the write lock
that ingestion needs while it computes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from drift import DriftResult, compare_profiles
from drift.concern import Verdict
from drift.errors import ReferenceSetNotFound
from jobs.check.blind import Blind, WindowQuality, window_quality
from jobs.check.figures import CheckFigures
from jobs.check.findings import compute_findings, findings_inputs
from jobs.check.flagged import Flagged
from jobs.check.policy import retrain_decision
from jobs.check.reference import load_reference
from jobs.check.verdict import window_verdict
from jobs.check.windows import DayProfile, store_days, window_profile
from jobs.config import ModelSettings, Settings
from jobs.lake.engine import external_days, store_rejected
from storage import quarantine, repository
from storage.clock import wall_clock
from storage.models import DriftColumnResult, DriftRun, FlaggedPrediction, Model
from storage.windows import versions_in_window

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """One version's window compared with its reference, as stored in ``drift_runs``."""

    model: str
    version: int | None  # None: no version logged in the window
    run_id: int | None
    window_start: datetime
    window_end: datetime
    n_rows: int
    drifted: bool
    outputs_drifted: bool | None
    embedding_drifted: bool | None
    retrain_worthy: bool
    reasons: tuple[str, ...]
    result: DriftResult | None
    figures: CheckFigures | None = None
    flagged: tuple[Flagged, ...] = ()
    skipped: str | None = None
    blind: Blind | None = None
    verdict: Verdict | None = None  # None: a window too small to judge
    revision: dict[str, str] | None = None  # late labels changed the verdict of this (past) window

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "n_rows": self.n_rows,
            "drifted": self.drifted,
            "outputs_drifted": self.outputs_drifted,
            "embedding_drifted": self.embedding_drifted,
            "retrain_worthy": self.retrain_worthy,
            "reasons": list(self.reasons),
            "skipped": self.skipped,
            "blind": self.blind.to_dict() if self.blind is not None else None,
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
            "revision": self.revision,
            "figures": self.figures.to_dict() if self.figures is not None else {},
            "flagged": [f.to_dict() for f in self.flagged],
            "result": self.result.to_dict() if self.result is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckReport:
        """Read back :meth:`to_dict` (``check --json``, a job outcome's data)."""
        return cls(
            model=str(data["model"]),
            version=int(data["version"]) if data["version"] is not None else None,
            run_id=data["run_id"],
            window_start=datetime.fromisoformat(data["window_start"]),
            window_end=datetime.fromisoformat(data["window_end"]),
            n_rows=int(data["n_rows"]),
            drifted=bool(data["drifted"]),
            outputs_drifted=data["outputs_drifted"],
            embedding_drifted=data["embedding_drifted"],
            retrain_worthy=bool(data["retrain_worthy"]),
            reasons=tuple(data["reasons"]),
            result=DriftResult.from_dict(data["result"]) if data["result"] is not None else None,
            figures=CheckFigures.from_dict(data["figures"]) if data["figures"] else None,
            flagged=tuple(Flagged.from_dict(f) for f in data["flagged"]),
            skipped=data["skipped"],
            blind=Blind.from_dict(data["blind"]) if data.get("blind") else None,
            verdict=Verdict.from_dict(data["verdict"]) if data.get("verdict") else None,
            revision=data.get("revision"),
        )


def check(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    *,
    window_days: float | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    min_rows: int = 30,
) -> list[CheckReport]:
    """Check the window ending at ``end`` (default: now) for every version that logged in it."""
    model = settings.model(model_name)
    now = now or wall_clock()
    end = end or now
    start = end - timedelta(days=window_days if window_days is not None else model.drift.window_days)
    reports: list[CheckReport] = []
    days: list[DayProfile] = []
    # Everything is computed in a read-only session: on SQLite no write lock is held while the
    # window is profiled and the findings gathered, so ingestion goes on meanwhile.
    with session_factory() as session:
        model_row = repository.get_model(session, model.name)
        model_id = model_row.id
        external = external_days(session, settings, model, model_row)  # a lake or push-down source
        versions = external.versions(start, end) if external else versions_in_window(session, model_id, start, end)
        missing: list[int] = []
        rejected_days: dict[datetime, tuple[tuple[str | None, str, int], ...]] = {}
        for version in versions:
            try:
                reference, reference_row = load_reference(session, model_row, version)
            except ReferenceSetNotFound:
                missing.append(version)
                log.warning("%s version %d has no reference set; its rows are not checked", model.name, version)
                continue
            inputs, reference_labelled = findings_inputs(session, model, model_row, version, reference, reference_row)
            profiles = window_profile(
                session, model, model_row, version, reference, start, end, now, inputs, external=external
            )
            days += profiles.to_store
            for day, counts in (profiles.rejected or {}).items():
                rejected_days.setdefault(day, counts)  # each version's pass sees the day's rejects
            window = profiles.profile
            n_rows = window.n_rows if window is not None else 0
            if window is None or n_rows < min_rows:
                reports.append(_skipped(model.name, version, start, end, n_rows, f"only {n_rows} rows (< {min_rows})"))
                continue
            result = compare_profiles(reference, window)
            findings = compute_findings(
                session,
                model,
                model_row,
                version,
                reference,
                reference_row,
                start,
                end,
                state=profiles.findings,
                inputs=inputs,
                reference_labelled=reference_labelled,
                external=external,
            )
            decision = retrain_decision(model.retrain_when, result, findings.figures)
            reports.append(
                CheckReport(
                    model=model.name,
                    version=version,
                    run_id=None,  # set once stored, below
                    window_start=start,
                    window_end=end,
                    n_rows=n_rows,
                    drifted=result.drifted,
                    outputs_drifted=result.outputs_drifted,
                    embedding_drifted=result.embedding_drifted,
                    retrain_worthy=decision.retrain_worthy,
                    reasons=decision.reasons,
                    result=result,
                    figures=findings.figures,
                    flagged=findings.flagged,
                )
            )
        if missing and not reports:
            raise ReferenceSetNotFound(model.name, missing[0])
        accepted = {r.version: r.n_rows for r in reports if r.version is not None}
        if missing:  # versions without a reference were not profiled: count their rows
            counted = quarantine.accepted_between(session, model_id, start, end)
            accepted |= {v: n for v, n in counted.items() if v in missing}
        rejected = [c for counts in rejected_days.values() for c in counts] if external is not None else None
        quality = window_quality(session, model_id, accepted, start, end, rejected=rejected)
        if quality.blind is not None:
            blind = quality.blind
            log.warning("check %s %s..%s: %s", model.name, f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}", blind.message)
            reports = _with_blind(reports, blind, model.name, start, end)
        reports = [_judged(session, model, model_row, r, quality) for r in reports]
    with session_factory.begin() as session:  # one short write transaction for all of it
        store_days(session, tuple(days))
        if external is not None:
            store_rejected(session, model, model_id, external.rejected())
        for i, report in enumerate(reports):
            if report.result is None:
                continue
            run = _store_run(session, model_id, report)
            session.add_all(FlaggedPrediction(run_id=run.id, model_id=model_id, **f.to_dict()) for f in report.flagged)
            reports[i] = replace(report, run_id=run.id)
    for report in reports:
        if report.result is not None:
            log.info(
                "check %s v%d %s..%s: %d rows, drifted=%s, retrain-worthy=%s%s",
                model.name,
                report.version,
                f"{start:%Y-%m-%d}",
                f"{end:%Y-%m-%d}",
                report.n_rows,
                report.drifted,
                report.retrain_worthy,
                f" ({'; '.join(report.reasons)})" if report.reasons else "",
            )
    return reports


def _judged(
    session: Session, model: ModelSettings, model_row: Model, report: CheckReport, quality: WindowQuality
) -> CheckReport:
    """The report with its verdict (a compared window, or a blind one)."""
    if report.result is None and report.blind is None:
        return report
    claim = None
    if report.version is not None:
        metrics = repository.get_version(session, model_row, report.version).metrics or {}
        claim = metrics.get("recent_accuracy") if isinstance(metrics.get("recent_accuracy"), int | float) else None
    verdict = window_verdict(
        model,
        report.result,
        report.figures,
        retrain_reasons=report.reasons if report.retrain_worthy else (),
        quality=quality,
        gate_claim=claim,
    )
    return replace(report, verdict=verdict)


def _with_blind(
    reports: list[CheckReport], blind: Blind, model: str, start: datetime, end: datetime
) -> list[CheckReport]:
    """The blind finding on the report of the window's largest version (a new one if none)."""
    if not reports:
        return [replace(_skipped(model, None, start, end, 0, "no predictions in the window"), blind=blind)]
    largest = max(range(len(reports)), key=lambda i: reports[i].n_rows)
    return [replace(r, blind=blind) if i == largest else r for i, r in enumerate(reports)]


def _skipped(model: str, version: int | None, start: datetime, end: datetime, n_rows: int, why: str) -> CheckReport:
    log.info("check %s%s skipped: %s", model, f" v{version}" if version is not None else "", why)
    return CheckReport(
        model=model,
        version=version,
        run_id=None,
        window_start=start,
        window_end=end,
        n_rows=n_rows,
        drifted=False,
        outputs_drifted=None,
        embedding_drifted=None,
        retrain_worthy=False,
        reasons=(),
        result=None,
        skipped=why,
    )


def _store_run(session: Session, model_id: int, report: CheckReport) -> DriftRun:
    result = report.result
    assert result is not None and report.version is not None  # a compared window has a version
    run = DriftRun(
        model_id=model_id,
        version=report.version,
        window_start=report.window_start,
        window_end=report.window_end,
        n_rows=result.n_current,
        drifted=result.drifted,
        outputs_drifted=result.outputs_drifted,
        embedding_drifted=result.embedding_drifted,
        retrain_worthy=report.retrain_worthy,
        reasons=list(report.reasons),
        result=result.to_dict(),
        figures=report.figures.to_dict() if report.figures is not None else {},
        engine=result.engine,
        created_at=wall_clock(),
        verdict=report.verdict.to_dict() if report.verdict is not None else None,
    )
    session.add(run)
    session.flush()
    session.add_all(
        DriftColumnResult(
            run_id=run.id,
            column=c.column,
            kind=c.kind,
            method=c.method,
            score=_finite(c.score),
            p_value=_finite(c.p_value),
            threshold=_finite(c.threshold),
            drifted=c.drifted,
        )
        for c in result.columns
    )
    return run


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)
