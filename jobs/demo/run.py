"""The end-to-end demo on the embedded default (SQLite under ./var/).

A small CNN is trained on scikit-learn's bundled digits and registered as version 1. The
production simulator then plays the app's backend over simulated weeks, writing prediction
logs into a separate SQLite database (the "production" source) and late labels into a drop
folder; from a given week on, inputs drift. Each simulated week the daemon's job runner fires
that week's schedule on a simulated clock (ingest and labels daily, the check at the end of the
week, the report after it). Week 1 becomes the reference (the first week after the deploy);
when a check is retrain-worthy, the runner retrains (the policy decides), the challenger is
gated, exported to TFLite and, if it passes, promoted; later weeks are served by the new
champion. Every checked week gets its HTML report.
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

from drift.errors import ConfigError, DriftkeeperError
from jobs.check.reference import reference_from_window
from jobs.config import Settings
from jobs.report.weeks import iso_week
from jobs.retrain import registry
from storage import repository
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from storage.statuses import JobStatus

log = logging.getLogger(__name__)
DEMO_START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
WEEK = timedelta(days=7)
SCENARIOS = ("digits", "photos")


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    var_dir: Path = Path("var")
    weeks: int = 6
    rows_per_week: int = 2000
    drift_from_week: int = 3
    epochs: int = 8
    seed: int = 0
    drift_strength: tuple[float, float] | None = None  # default: (0.4, 0.7) digits, (0.8, 1.0) photos
    min_new_labels: int | None = None  # override retrain.min_new_labels (short demos)
    scenario: str = "digits"  # digits | photos (see jobs.demo.photos_demo)


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
    # the demo's clock ticks in weeks: the check runs at the end of each simulated week
    data["schedule"] |= {"check_cron": "0 0 * * mon", "report_cron": "0 6 * * mon"}
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
        foreign = names - set(SCENARIOS)
        if foreign:
            raise ConfigError(
                f"{database} holds models the demo does not own ({', '.join(sorted(foreign))}); "
                "run the demo with another --var-dir"
            )
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    for name in SCENARIOS:
        for folder in (settings.paths.models_dir / name, settings.paths.reports_dir / name):
            shutil.rmtree(folder, ignore_errors=True)
    for folder in (var_dir / "demo", var_dir / "team"):
        shutil.rmtree(folder, ignore_errors=True)


def run_demo(options: DemoOptions, *, echo: Any = print) -> DemoReport:
    """Train, register, simulate ``options.weeks`` weeks, ingest and check each week."""
    if options.scenario not in SCENARIOS:
        raise ConfigError(f"unknown demo scenario {options.scenario!r}; allowed: {', '.join(SCENARIOS)}")
    if options.scenario == "photos":
        from jobs.demo.photos_demo import photos_settings

        settings = photos_settings(options.var_dir, min_new_labels=options.min_new_labels)
    else:
        settings = demo_settings(options.var_dir, min_new_labels=options.min_new_labels)
    reset_demo_state(settings, options.var_dir)
    model = settings.models[0]
    engine = make_engine(settings.database.url.get_secret_value())
    upgrade(engine)
    factory = make_session_factory(engine)
    try:
        if options.scenario == "photos":
            from jobs.demo.photos_demo import setup_photos

            simulator, baseline = setup_photos(settings, options, echo=echo)
            model_path = Path(baseline.pop("model_path"))
        else:
            simulator, baseline, model_path = _setup_digits(factory, settings, options, echo)
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


def _setup_digits(
    factory: sessionmaker[Session], settings: Settings, options: DemoOptions, echo: Any
) -> tuple[Any, dict[str, Any], Path]:
    from jobs.demo.digits import load_digits_data
    from jobs.demo.digits_model import train_baseline
    from jobs.demo.simulator import ProductionSimulator

    model = settings.models[0]
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
        repository.register_version(session, row, 1, artifact_path=str(model_path), status="champion", metrics=baseline)
    npz = model.retrain.training_data or settings.paths.models_dir / model.name / "training_data.npz"
    data.save_training_npz(Path(npz))
    simulator = ProductionSimulator(
        options.var_dir / "demo",
        model_name=model.name,
        seed=options.seed,
        rows_per_week=options.rows_per_week,
        drift_from_week=options.drift_from_week,
        drift_strength=options.drift_strength or (0.4, 0.7),
    )
    return simulator, baseline, model_path


def week_schedule(settings: Settings, start: datetime, end: datetime) -> list[tuple[datetime, str, str | None]]:
    """The scheduled runs of [start, end] in simulated time: ingest and labels once a simulated
    day (the daemon's interval triggers run on wall-clock time), check and report at the fire
    times of the config's crontabs, as the daemon would fire them."""
    from apscheduler.triggers.cron import CronTrigger

    model = settings.models[0].name
    events: list[tuple[datetime, str, str | None]] = []
    day = start
    while day < end:
        events += [(day + timedelta(hours=1), "ingest", None), (day + timedelta(hours=1), "labels", None)]
        day += timedelta(days=1)
    for name, crontab in (("check", settings.schedule.check_cron), ("report", settings.schedule.report_cron)):
        trigger = CronTrigger.from_crontab(crontab, timezone=settings.schedule.timezone)
        fire = trigger.get_next_fire_time(None, start + timedelta(seconds=1))  # `start` belongs to last week
        while fire is not None and fire <= end:
            events.append((fire, name, model))
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    order = {"ingest": 0, "labels": 1, "check": 2, "report": 3}
    return sorted(events, key=lambda e: (e[0], order[e[1]]))


_LEVELS = ["ok", "watch", "act"]


def _simulate_week(
    factory: sessionmaker[Session],
    settings: Settings,
    simulator: Any,
    week: int,
    echo: Any,
) -> WeekOutcome:
    """One simulated week: the app logs it, then the daemon's job runner fires its schedule."""
    from jobs.runner.scheduler import JobRunner

    model = settings.models[0]
    start = DEMO_START + (week - 1) * WEEK
    end = start + WEEK
    with factory() as session:
        champion = registry.champion(session, repository.get_model(session, model.name))
        serving, serving_path = champion.version, Path(champion.artifact_path or "")
    summary = simulator.simulate_week(week, serving_path, serving, start)
    clock: list[datetime] = [start]
    runner = JobRunner(factory, settings, clock=lambda: clock[0])
    ingested = quarantined = 0
    checks: list[dict[str, Any]] = []
    revisions: list[str] = []
    retrains: list[dict[str, Any]] = []
    report_path = None
    for fire, name, model_name in week_schedule(settings, start, end + timedelta(hours=12)):
        clock[0] = fire
        if name == "check" and week == 1:  # the deploy procedure: week 1 becomes the reference
            reference_from_window(factory, model, 1, start, end)
            continue
        for outcome in runner.fire(name, model_name):
            if outcome.status != JobStatus.SUCCEEDED:
                raise DriftkeeperError(f"demo: {outcome.job} failed: {outcome.error}")
            if outcome.job in ("ingest", "labels"):
                for r in outcome.data["runs"]:
                    ingested += r["inserted"] if r["stream"] == "predictions" else 0
                    quarantined += r["quarantined"]
            elif outcome.job == "check":  # this week's window, and past weeks checked again as labels arrived
                runs = [r for r in outcome.data["runs"] if r["run_id"] is not None]
                checks += [r for r in runs if datetime.fromisoformat(r["window_end"]) == end]
                revisions += [
                    f"week {iso_week(datetime.fromisoformat(r['window_end']) - WEEK)} revised "
                    f"{r['revision']['previous']} -> {r['revision']['level']}: {r['revision']['why']}"
                    for r in runs
                    if r.get("revision")
                ]
            elif outcome.job == "retrain":
                retrains.append(outcome.data)
            elif outcome.job == "report":
                report_path = Path(outcome.data["report"])
    drifted = any(c["drifted"] for c in checks) if checks else None
    retrain_worthy = any(c["retrain_worthy"] for c in checks) if checks else None
    reasons = tuple(r for c in checks for r in c["reasons"])
    levels = [c["verdict"]["level"] for c in checks if c.get("verdict")]
    if week == 1:
        verdict = "reference set built from this week (the first week after the deploy)"
    else:
        verdict = "DRIFT" if drifted else ("no drift" if reasons else "quiet")
        verdict += f", verdict {max(levels, key=_LEVELS.index).upper()}" if levels else ""
        verdict += f" - retrain-worthy: {'; '.join(reasons)}" if reasons else ""
    for revised in revisions:
        verdict += f"\n    {revised}"
    for retrained in retrains:
        verdict += (
            f"\n    retrain -> version {retrained['version']}: {retrained['decision']} "
            f"({'; '.join(retrained['reasons'])})"
        )
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
        checked=bool(checks),
        drifted=drifted,
        retrain_worthy=retrain_worthy,
        reasons=reasons,
        serving_version=serving,
        retrain=retrains[-1]["decision"] if retrains else None,
        report=report_path,
    )
