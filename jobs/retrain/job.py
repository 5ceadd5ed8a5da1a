"""The retrain job: trigger policy, training, the champion/challenger gate, TFLite export,
registration and promotion.

A retrain starts when the latest check of the champion is retrain-worthy, enough labelled
production samples arrived since the champion was deployed, the cooldown has passed and no
other process holds the model's retrain lease (``--force`` skips the first three, never the
lease). The challenger learns from the champion's training set plus the labelled production
samples (recent ones weighted up, confidently-wrong ones always in), and is judged on data it
never saw: the original test set and a held-out slice of the recent labelled samples. That
slice represents the drifted data: the recent window is cut into periods (jobs.retrain.periods),
each gives the same share to the slice, and the periods since the drifted window began (the
first of the champion's unbroken retrain-worthy checks) carry ``drifted_weight`` of the score;
a retrain waits until that window has ``min_drifted_labels`` labels. The challenger is
promoted only if it beats the champion on the recent slice by the configured margin, loses no
more than the tolerance on the original test set, is not more often confidently wrong, and its
TFLite export passes its checks. Every decision is stored with its figures and reasons; a
failing trainer leaves the champion untouched.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import DriftkeeperError, TrainingError
from jobs.config import ModelSettings, Settings
from jobs.retrain import registry, training_data
from jobs.retrain.data import labelled_count, labelled_samples, storage_options, window_inputs
from jobs.retrain.gate import Challenger, GateDecision, judge, teacher_samples, train_challenger
from jobs.retrain.periods import HoldoutSplit, split_periods
from storage import drift_runs, leases, repository, retrains
from storage.clock import wall_clock
from storage.models import DriftRun
from storage.statuses import RetrainDecision

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RetrainPlan:
    """Whether a retrain should start now, and why (or why not)."""

    model: str
    should_run: bool
    reasons: tuple[str, ...]
    champion: int | None
    drift_run_id: int | None
    new_labels: int
    # the drifted window: from the first of the champion's unbroken retrain-worthy checks to the
    # end of the latest; None when the latest check is not retrain-worthy
    drift_window: tuple[datetime, datetime] | None = None
    drifted_labels: int = 0  # labelled samples since the drifted window began

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "should_run": self.should_run,
            "reasons": list(self.reasons),
            "champion": self.champion,
            "drift_run_id": self.drift_run_id,
            "new_labels": self.new_labels,
            "drift_window": [t.isoformat() for t in self.drift_window] if self.drift_window else None,
            "drifted_labels": self.drifted_labels,
        }


@dataclass(frozen=True, kw_only=True)
class RetrainOutcome:
    model: str
    decision: RetrainDecision
    plan: RetrainPlan
    run_id: int | None = None
    version: int | None = None
    parent: int | None = None
    reasons: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "decision": self.decision,
            "run_id": self.run_id,
            "version": self.version,
            "parent": self.parent,
            "reasons": list(self.reasons),
            "metrics": self.metrics,
            "export": self.export,
            "plan": self.plan.to_dict(),
        }


def plan_retrain(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> RetrainPlan:
    model = settings.model(model_name)
    policy = model.retrain
    now = now or wall_clock()
    with session_factory() as session:
        model_row = repository.get_model(session, model.name)
        champion = registry.champion(session, model_row)
        champion_path = champion.artifact_path
        latest = retrains.latest_check(session, model_row.id, champion.version)
        last = retrains.last_retrain_start(session, model_row.id)
        if latest is not None and not latest.retrain_worthy:  # a past week that late labels revised counts too
            latest = retrains.revised_worthy_check(session, model_row.id, champion.version, last) or latest
        # labels that arrived since the last retrain attempt, for predictions the champion made
        new_labels = retrains.new_label_count(session, model_row.id, champion.version, since=last)
        drift_window = None
        drifted_labels = 0
        if latest is not None and latest.retrain_worthy:
            since = _drifted_since(session, latest, now - timedelta(days=policy.recent_days))
            drift_window = (since, latest.window_end)
            drifted_labels = labelled_count(session, model, model_row, since, now)
    blockers: list[str] = []
    reasons: list[str] = []
    if latest is not None and latest.retrain_worthy:
        reasons.append(
            f"check {latest.id} ({latest.window_end:%Y-%m-%d}) is retrain-worthy: " + "; ".join(latest.reasons)
        )
    else:
        blockers.append(
            "the latest check of the champion is not retrain-worthy" if latest else "the champion was never checked"
        )
    if drift_window is not None:
        drifted = f"{drifted_labels} labelled samples since the drifted window began ({drift_window[0]:%Y-%m-%d})"
        if drifted_labels >= policy.min_drifted_labels:
            reasons.append(drifted)
        else:
            blockers.append(f"only {drifted}, < {policy.min_drifted_labels}: too few to judge on the drifted data")
    if new_labels >= policy.min_new_labels:
        reasons.append(f"{new_labels} new labelled samples for version {champion.version}")
    else:
        blockers.append(
            f"only {new_labels} new labelled samples for version {champion.version} (< {policy.min_new_labels})"
        )
    if last is not None and now - last < timedelta(hours=policy.cooldown_hours):
        blockers.append(f"cooldown: last retrain started {last:%Y-%m-%d %H:%M}, cooldown {policy.cooldown_hours:g} h")
    missing = _missing_inputs(model, champion_path, storage_options(settings))
    holder = leases.current_holder(session_factory, lease_name(model.name))
    in_flight = f"a retrain is already in flight ({holder.holder})" if holder is not None else None
    # nothing to train from is not a policy question: --force does not skip it
    should = in_flight is None and not missing and (force or not blockers)
    explained = tuple(
        reasons + (["forced"] if force and blockers else []) + blockers + missing + ([in_flight] if in_flight else [])
    )
    return RetrainPlan(
        model=model.name,
        should_run=should,
        reasons=explained,
        champion=champion.version,
        drift_run_id=latest.id if latest is not None else None,
        new_labels=new_labels,
        drift_window=drift_window,
        drifted_labels=drifted_labels,
    )


def _missing_inputs(model: ModelSettings, champion_path: str | None, options: dict[str, Any]) -> list[str]:
    """What a retrain would need and cannot find: the champion's model file, the training data."""
    missing = []
    if champion_path is None or not Path(champion_path).is_file():
        where = f" ({champion_path} does not exist)" if champion_path else " (none registered with it)"
        missing.append(f"the champion has no model file to start from{where}")
    data = model.retrain.training_data
    if data is None:
        missing.append("retrain.training_data is not configured")
    elif not training_data.exists(data, options):
        missing.append(f"retrain.training_data {data} does not exist")
    return missing


def _drifted_since(session: Session, latest: DriftRun, horizon: datetime) -> datetime:
    """When the drift began: the window start of the first of ``latest``'s version's unbroken run of
    retrain-worthy checks ending with ``latest`` (checks ending after ``horizon``)."""
    since = latest.window_start
    runs = drift_runs.main_runs(session, latest.model_id, horizon, latest.window_end)
    for end in sorted(runs, reverse=True):
        run = runs[end]
        if end < since or run.version != latest.version or not run.retrain_worthy:
            break
        since = min(since, run.window_start)
    return since


def lease_name(model: str) -> str:
    return f"retrain:{model}"


def retrain(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    *,
    force: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetrainOutcome:
    """Plan, and unless ``dry_run`` or the plan says no, retrain, gate, export and promote."""
    model = settings.model(model_name)
    now = now or wall_clock()
    plan = plan_retrain(session_factory, settings, model.name, force=force, now=now)
    if dry_run or not plan.should_run:
        return RetrainOutcome(
            model=model.name, decision=RetrainDecision.SKIPPED, plan=plan, reasons=plan.reasons, parent=plan.champion
        )
    ttl = timedelta(minutes=model.retrain.lease_minutes)
    with leases.renewing_lease(session_factory, lease_name(model.name), ttl):  # renewed: training may be long
        return _run(session_factory, settings, model, plan, now)


def _run(
    session_factory: sessionmaker[Session], settings: Settings, model: ModelSettings, plan: RetrainPlan, now: datetime
) -> RetrainOutcome:
    with session_factory.begin() as session:
        model_row = repository.get_model(session, model.name)
        champion = registry.champion(session, model_row)
        version = registry.next_version(session, model_row)
        retrains.mark_killed(session, model_row.id, now)  # we hold the lease: a 'running' one died
        run = retrains.start_retrain_run(
            session,
            model_row.id,
            started_at=now,
            trigger="forced" if "forced" in plan.reasons else "policy",
            drift_run_id=plan.drift_run_id,
            parent_version=champion.version,
            version=version,
            reasons=list(plan.reasons),
        )
        run_id, champion_path = run.id, champion.artifact_path
    log.info(
        "retrain %s: version %d from champion %d (%s)", model.name, version, plan.champion, "; ".join(plan.reasons)
    )
    trained = False
    try:
        if not champion_path:
            raise TrainingError(f"champion version {plan.champion} has no model file (artifact_path)")
        from jobs.ml.network import contract_for_file

        contract = contract_for_file(champion_path, model.contract, model.class_labels, task=model.task)
        options = storage_options(settings)
        start = now - timedelta(days=model.retrain.recent_days)
        with session_factory() as session:
            samples = labelled_samples(
                session, model, repository.get_model(session, model.name), start, now, storage_options=options
            )
        if len(samples) == 0:
            raise TrainingError(
                f"no labelled production samples with images inside image_roots ({samples.skipped or 'none logged'})"
            )
        periods = split_periods(
            start, now, drift_start=plan.drift_window[0] if plan.drift_window else None, days=model.drift.window_days
        )
        split = HoldoutSplit.stratified(samples.prediction_id, samples.ts, periods, model.retrain.holdout_share)
        holdout = split.held
        unlabelled = None
        if model.retrain.teacher_path is not None:
            with session_factory() as session:
                recent = window_inputs(
                    session, model, repository.get_model(session, model.name), start, now, storage_options=options
                )
            if recent is not None:  # unlabelled only: never the held-out slice, never a human label
                unlabelled = recent[1].take(~np.isin(recent[0].prediction_id, samples.prediction_id))
        if model.task == "segmentation":
            from jobs.retrain.segmentation import train_and_judge

            trained = True
            challenger, decision = train_and_judge(
                settings, model, contract, champion_path, version, plan, samples, split, (start, now), unlabelled
            )
            counts: dict[str, Any] = {}
        else:
            base = training_data.load_training_data(
                model.retrain.training_data, model.class_labels, test_share=model.retrain.test_share,
                storage_options=options,
            )  # fmt: skip
            extra = teacher_samples(model, unlabelled, now, contract) if unlabelled is not None else None
            trained = True
            challenger = train_challenger(
                settings, model, contract, champion_path, version, base, samples.take(~holdout), extra
            )
            counts = {
                "n_train_new": int((~holdout).sum()),
                "n_teacher": len(extra) if extra is not None else 0,
                "training_data": base.to_dict(),
                "images_skipped": {"samples": samples.skipped, "training": challenger.skipped},
            }
            decision = judge(
                settings, model, contract, champion_path, challenger.path, version, plan, base, split,
                samples.take(holdout), (start, now),
            )  # fmt: skip
        decision = replace(decision, data=decision.data | counts, metrics=decision.metrics | _plain_counts(counts))
    except Exception as exc:
        _finish(
            session_factory,
            run_id,
            RetrainDecision.FAILED if trained else RetrainDecision.ABORTED,
            [f"{type(exc).__name__}: {exc}"],
            {},
            {},
            traceback.format_exc(),
        )
        if isinstance(exc, DriftkeeperError):
            raise
        raise TrainingError(f"retrain of {model.name} failed: {exc}") from exc
    try:
        return _register(
            session_factory,
            settings,
            model,
            plan,
            run_id,
            version,
            contract,
            challenger,
            decision,
            samples.take(holdout),
            (start, now),
        )
    except Exception as exc:  # the run must not stay 'running' (it would count for the cooldown forever)
        _finish(
            session_factory,
            run_id,
            RetrainDecision.FAILED,
            [f"{type(exc).__name__}: {exc}"],
            {},
            {},
            traceback.format_exc(),
        )
        raise


def _register(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: ModelSettings,
    plan: RetrainPlan,
    run_id: int,
    version: int,
    contract: Any,
    challenger: Challenger,
    decision: GateDecision,
    holdout: Any,
    window: tuple[datetime, datetime],
) -> RetrainOutcome:
    from jobs.retrain.gate import challenger_reference

    reference = (
        challenger_reference(session_factory, settings, model, contract, challenger.path, holdout, window)
        if decision.promote
        else None
    )
    if decision.promote and reference is None:
        decision = GateDecision(
            promote=False,
            reasons=("no recent inputs with readable images to build the new reference from",),
            metrics=decision.metrics,
            export=decision.export,
            data=decision.data,
        )
    with session_factory.begin() as session:
        model_row = repository.get_model(session, model.name)
        row = repository.register_version(
            session,
            model_row,
            version,
            artifact_path=str(challenger.path),
            status="challenger",
            parent_version=plan.champion,
            metrics=decision.metrics,
            lineage={
                "trigger": plan.reasons,
                "drift_run_id": plan.drift_run_id,
                "retrain_run_id": run_id,
                "data": decision.data,
            },
        )
        row.export_dir = decision.export.get("out_dir")
        if decision.promote and reference is not None:
            from jobs.check.reference import save_reference

            profile, extras = reference
            save_reference(session, model_row, version, profile, source="retrain", extras=extras)
            registry.promote(session, model_row, version, now=window[1])  # the retrain's clock
        else:
            row.status = "rejected"
    outcome = RetrainDecision.PROMOTED if decision.promote else RetrainDecision.REJECTED
    _finish(session_factory, run_id, outcome, list(decision.reasons), decision.metrics, decision.export, None)
    log.info("retrain %s: version %d %s (%s)", model.name, version, outcome, "; ".join(decision.reasons))
    return RetrainOutcome(
        model=model.name,
        decision=outcome,
        plan=plan,
        run_id=run_id,
        version=version,
        parent=plan.champion,
        reasons=decision.reasons,
        metrics=decision.metrics,
        export=decision.export,
    )


def _plain_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """The counts that belong among a version's metrics (numbers only)."""
    return {k: v for k, v in counts.items() if isinstance(v, int | float)}


def _finish(
    session_factory: sessionmaker[Session],
    run_id: int,
    decision: str,
    reasons: list[str],
    metrics: dict[str, Any],
    export: dict[str, Any],
    error: str | None,
) -> None:
    with session_factory.begin() as session:
        retrains.finish_retrain_run(
            session,
            run_id,
            decision=decision,
            reasons=reasons,
            metrics=metrics,
            export=export,
            error=error,
            finished_at=wall_clock(),
        )
