"""The end-to-end demo on the embedded default (SQLite under ./var/).

A small CNN is trained on scikit-learn's bundled digits and registered as version 1. The
production simulator then plays the app's backend over simulated weeks, writing prediction
logs into a separate SQLite database (the "production" source) and late labels into a drop
folder; from a given week on, inputs drift. Each simulated week driftkeeper ingests, and
checks the week against the reference (the first week after the deploy); when a check is
retrain-worthy, the model is retrained, gated, exported to TFLite and, if it passes, promoted;
later weeks are served by the new champion. Every checked week gets its HTML report.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import ConfigError
from jobs import registry
from jobs.check import check
from jobs.config import Settings
from jobs.ingest.run import ingest
from jobs.reference import reference_from_window
from jobs.report import iso_week, weekly_report
from jobs.retrain import retrain
from jobs.retrain_data import BaseData
from jobs.runs import recorded_run
from storage import repository
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade

log = logging.getLogger(__name__)
DEMO_START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
WEEK = timedelta(days=7)


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    var_dir: Path = Path("var")
    weeks: int = 6
    rows_per_week: int = 2000
    drift_from_week: int = 3
    epochs: int = 8
    seed: int = 0
    drift_strength: tuple[float, float] = (0.4, 0.7)
    min_new_labels: int | None = None  # override retrain.min_new_labels (short demos)


@dataclass(frozen=True, kw_only=True)
class WeekOutcome:
    week: int
    start: datetime
    rows: int
    drifted_inputs: int
    true_accuracy: float
    labels_released: int
    ingested: int
    quarantined: int
    checked: bool
    drifted: bool | None
    retrain_worthy: bool | None
    reasons: tuple[str, ...] = ()
    serving_version: int = 1
    retrain: str | None = None
    report: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "start": self.start.isoformat(),
            "rows": self.rows,
            "drifted_inputs": self.drifted_inputs,
            "true_accuracy": round(self.true_accuracy, 4),
            "labels_released": self.labels_released,
            "ingested": self.ingested,
            "quarantined": self.quarantined,
            "checked": self.checked,
            "drifted": self.drifted,
            "retrain_worthy": self.retrain_worthy,
            "reasons": list(self.reasons),
            "serving_version": self.serving_version,
            "retrain": self.retrain,
            "report": str(self.report) if self.report else None,
        }


@dataclass(frozen=True, kw_only=True)
class DemoReport:
    database: str
    model_path: Path
    export_dir: Path | None
    reports_index: Path
    baseline: dict[str, Any]
    weeks: tuple[WeekOutcome, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "model_path": str(self.model_path),
            "export_dir": str(self.export_dir) if self.export_dir else None,
            "reports_index": str(self.reports_index),
            "baseline": self.baseline,
            "weeks": [w.to_dict() for w in self.weeks],
        }


def demo_settings(var_dir: Path, *, min_new_labels: int | None = None) -> Settings:
    """The example config (``driftkeeper init``) with every path under ``var_dir``."""
    text = resources.files("jobs").joinpath("example_config.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text.replace("var/", f"{var_dir.as_posix().rstrip('/')}/"))
    if min_new_labels is not None:
        data["models"][0]["retrain"]["min_new_labels"] = min_new_labels
    return Settings(**data)


def reset_demo_state(settings: Settings, var_dir: Path) -> None:
    """Start from scratch: the demo's own database, production folder and model files."""
    url = settings.database.url.get_secret_value()
    if not url.startswith("sqlite:///"):
        raise ConfigError("the demo runs on the embedded SQLite default only")
    database = Path(url.removeprefix("sqlite:///"))
    if database.exists():
        engine = make_engine(url)
        try:
            upgrade(engine)
            with make_session_factory(engine)() as session:
                names = {m.name for m in repository.list_models(session)}
        finally:
            engine.dispose()
        foreign = names - {m.name for m in settings.models}
        if foreign:
            raise ConfigError(
                f"{database} holds models the demo does not own ({', '.join(sorted(foreign))}); "
                "run the demo with another --var-dir"
            )
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    for folder in (var_dir / "demo", settings.paths.models_dir / "digits", settings.paths.reports_dir / "digits"):
        shutil.rmtree(folder, ignore_errors=True)


def run_demo(options: DemoOptions, *, echo: Any = print) -> DemoReport:
    """Train, register, simulate ``options.weeks`` weeks, ingest and check each week."""
    from jobs.ml.cnn import train_baseline
    from jobs.ml.digits import load_digits_data
    from jobs.ml.simulator import ProductionSimulator

    settings = demo_settings(options.var_dir, min_new_labels=options.min_new_labels)
    reset_demo_state(settings, options.var_dir)
    model = settings.models[0]
    engine = make_engine(settings.database.url.get_secret_value())
    upgrade(engine)
    factory = make_session_factory(engine)
    try:
        echo(f"training the baseline CNN on scikit-learn's digits ({options.epochs} epochs)...")
        data = load_digits_data(options.seed)
        model_path = settings.paths.models_dir / model.name / "v1" / "model.keras"
        trained = train_baseline(data, epochs=options.epochs, seed=options.seed, out_path=model_path)
        baseline = {
            "val_accuracy": trained.val_accuracy,
            "test_accuracy": trained.test_accuracy,
            "train_seconds": round(trained.train_seconds, 1),
        }
        echo(f"  version 1: test accuracy {trained.test_accuracy:.1%} ({trained.train_seconds:.0f} s)")
        with factory.begin() as session:
            row = repository.ensure_model(session, model.name, model.task)
            repository.register_version(
                session, row, 1, artifact_path=str(model_path), status="champion", metrics=baseline
            )
        BaseData(x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test).save(
            model.retrain.training_data or settings.paths.models_dir / model.name / "training_data.npz"
        )
        simulator = ProductionSimulator(
            options.var_dir / "demo",
            model_name=model.name,
            seed=options.seed,
            rows_per_week=options.rows_per_week,
            drift_from_week=options.drift_from_week,
            drift_strength=options.drift_strength,
        )
        outcomes = [_simulate_week(factory, settings, simulator, week, echo) for week in range(1, options.weeks + 1)]
        with factory() as session:
            champion = registry.champion(session, repository.get_model(session, model.name))
            champion_path, export_dir = Path(champion.artifact_path or model_path), champion.export_dir
        return DemoReport(
            database=str(settings.database.url.get_secret_value()),
            model_path=champion_path,
            export_dir=Path(export_dir) if export_dir else None,
            reports_index=settings.paths.reports_dir / model.name / "index.html",
            baseline=baseline,
            weeks=tuple(outcomes),
        )
    finally:
        engine.dispose()


def _simulate_week(
    factory: sessionmaker[Session],
    settings: Settings,
    simulator: Any,
    week: int,
    echo: Any,
) -> WeekOutcome:
    model = settings.models[0]
    start = DEMO_START + (week - 1) * WEEK
    end = start + WEEK
    with factory() as session:
        champion = registry.champion(session, repository.get_model(session, model.name))
        serving, serving_path = champion.version, Path(champion.artifact_path or "")
    summary = simulator.simulate_week(week, serving_path, serving, start)
    with recorded_run(factory, "ingest", model.name) as run:
        reports = ingest(factory, settings, model.name)
        run.counts = {"inserted": sum(r.inserted for r in reports)}
    ingested = sum(r.inserted for r in reports if r.stream == "predictions")
    quarantined = sum(r.quarantined for r in reports)
    drifted = retrain_worthy = None
    reasons: tuple[str, ...] = ()
    retrain_decision: str | None = None
    if week == 1:
        reference_from_window(factory, model, 1, start, end)
        verdict = "reference set built from this week (the first week after the deploy)"
    else:
        with recorded_run(factory, "check", model.name) as run:
            checks = [c for c in check(factory, settings, model.name, end=end, now=end) if c.run_id is not None]
            run.counts = {"runs": len(checks)}
        drifted = any(c.drifted for c in checks)
        retrain_worthy = any(c.retrain_worthy for c in checks)
        reasons = tuple(r for c in checks for r in c.reasons)
        verdict = ("DRIFT" if drifted else "quiet") + (f" - retrain-worthy: {'; '.join(reasons)}" if reasons else "")
        if retrain_worthy:
            with recorded_run(factory, "retrain", model.name) as run:
                retrained = retrain(factory, settings, model.name, now=end)
                run.counts = {"decision": retrained.decision, "version": retrained.version}
            retrain_decision = retrained.decision
            verdict += (
                f"\n    retrain -> version {retrained.version}: {retrained.decision} ({'; '.join(retrained.reasons)})"
            )
    report_path = None
    if week > 1:
        with recorded_run(factory, "report", model.name) as run:
            report = weekly_report(factory, settings, model.name, week=iso_week(start), now=end)
            run.counts = {"status": report.status}
        report_path = report.report
    echo(
        f"  week {week} ({start:%Y-%m-%d}, v{serving}): {summary.rows} predictions, "
        f"{summary.drifted_rows} drifted inputs, "
        f"true accuracy {summary.accuracy:.1%}, {summary.labels_released} labels arrived -> {verdict}"
    )
    return WeekOutcome(
        week=week,
        start=start,
        rows=summary.rows,
        drifted_inputs=summary.drifted_rows,
        true_accuracy=summary.accuracy,
        labels_released=summary.labels_released,
        ingested=ingested,
        quarantined=quarantined,
        checked=week > 1,
        drifted=drifted,
        retrain_worthy=retrain_worthy,
        reasons=reasons,
        serving_version=serving,
        retrain=retrain_decision,
        report=report_path,
    )
