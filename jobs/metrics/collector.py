"""The Prometheus collector: driftkeeper's state, read from the database at each scrape.

The daemon's ``/metrics`` and the textfile of one-shot runs both come from
:class:`DriftkeeperCollector`, so they publish the same thing. Every value is read through a
read-only session when Prometheus asks (nothing is cached in the process), for the configured
models only. Labels are bounded: ``model`` by the config, ``version`` by the versions checked in a
model's latest window (at most :data:`MAX_VERSIONS`), ``column`` by ``metrics.max_columns`` per
version (drifted columns first), ``reason`` by ``metrics.max_reasons`` per model and stream (the
rest as ``other``). A scrape that cannot read the database answers ``driftkeeper_collect_success 0``
(the error logged) instead of failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import DriftkeeperError
from jobs.check.figures import stored_figures
from jobs.config import Settings
from jobs.metrics.labels import label_value, top_reasons
from jobs.runner.execute import JOB_NAMES
from storage import metrics as queries
from storage.statuses import VerdictLevel

log = logging.getLogger(__name__)

PREFIX = "driftkeeper_"
MAX_VERSIONS = 3  # versions published per model: those checked in its latest window, most rows first
MV = ("model", "version")


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    name: str  # without the prefix
    documentation: str
    labels: tuple[str, ...]


SPECS = tuple(
    MetricSpec(name=n, documentation=d, labels=labels)
    for n, d, labels in (
        ("drift_score", "Drift score of a column in the latest checked window (its method's statistic).",
         (*MV, "column")),
        ("column_drifted", "1 if the column drifted in the latest checked window.", (*MV, "column")),
        ("drift_columns_omitted", "Columns of the latest run left out of the column series (metrics.max_columns).", MV),
        ("drift_window_end_timestamp_seconds", "End of the latest checked window (Unix time).", MV),
        ("drift_window_rows", "Prediction rows in the latest checked window.", MV),
        ("verdict_level", "Verdict of the latest checked window: 0 ok, 1 watch (drift), 2 act (retrain-worthy).", MV),
        ("accuracy_realized", "Accuracy on the labels that arrived for the latest checked window.", MV),
        ("accuracy_estimated", "Label-free accuracy estimate of the latest checked window.", MV),
        ("labelled_predictions", "Labelled predictions of the latest checked window.", MV),
        ("confidently_wrong_rate", "Share of confident labelled predictions that were wrong, latest window.", MV),
        ("confident_outlier_rate", "Share of confident predictions on outlying inputs, latest window.", MV),
        ("confident_outliers", "Confident predictions on outlying inputs, latest window.", MV),
        ("champion_version", "The champion version of the model.", ("model",)),
        ("prediction_rows", "Prediction rows stored for the model (retention removes old ones).", ("model",)),
        ("quarantined_rows", "Rows in the quarantine now, by stream and reason (numbers folded to #).",
         ("model", "stream", "reason")),
        ("window_blind", "1 if the model's last successful check found a blind window.", ("model",)),
        ("job_last_duration_seconds", "Duration of the job's last finished run.", ("job_name", "model")),
        ("job_last_run_succeeded", "1 if the job's last finished run succeeded.", ("job_name", "model")),
        ("job_last_success_timestamp_seconds", "When the job last succeeded (Unix time).", ("job_name", "model")),
        ("collect_success", "1 if this scrape read the database; 0: the values are missing (see the log).", ()),
        ("collect_duration_seconds", "Time this scrape took to read the database.", ()),
    )
)  # fmt: skip
METRIC_NAMES = tuple(PREFIX + s.name for s in SPECS)


class _Families:
    """The gauges of one collection, by name without the prefix."""

    def __init__(self) -> None:
        self._families = {s.name: GaugeMetricFamily(PREFIX + s.name, s.documentation, labels=s.labels) for s in SPECS}

    def add(self, name: str, labels: Sequence[str], value: float | None) -> None:
        if value is not None:
            self._families[name].add_metric([label_value(v) for v in labels], float(value))

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


class DriftkeeperCollector(Collector):
    """A custom collector (``registry.register(DriftkeeperCollector(...))``) reading at scrape time."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self.session_factory = session_factory
        self.settings = settings

    def describe(self) -> Iterable[Metric]:
        return ()  # nothing is read at registration; the names are METRIC_NAMES

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        families = _Families()
        success = 1.0
        try:
            self._read(families)
        except Exception:  # a scrape must answer; the failure shows as collect_success 0 and in the log
            log.exception("metrics: could not read driftkeeper's state from the database")
            families, success = _Families(), 0.0
        families.add("collect_success", (), success)
        families.add("collect_duration_seconds", (), time.perf_counter() - started)
        yield from families

    def _read(self, out: _Families) -> None:
        config = self.settings.metrics
        names = [m.name for m in self.settings.models]
        with queries.read_only_session(self.session_factory) as s:
            ids = queries.model_ids(s, names)
            champions = queries.champion_versions(s, ids.values())
            rows = queries.prediction_counts(s, ids.values())
            reasons = queries.quarantine_counts(s, ids.values())
            totals = queries.quarantine_totals(s, ids.values())
            jobs = queries.job_summaries(s, JOB_NAMES, names)
            checks = queries.last_success_counts(s, "check", names)
            latest = {
                model: queries.latest_runs(s, i, max_versions=MAX_VERSIONS, max_columns=config.max_columns)
                for model, i in ids.items()
            }
        for model in names:
            model_id = ids.get(model)
            out.add("prediction_rows", (model,), rows.get(model_id, 0) if model_id is not None else 0)
            if model_id is not None:
                out.add("champion_version", (model,), champions.get(model_id))
            if model in checks:
                out.add("window_blind", (model,), 1.0 if checks[model].get("blind") else 0.0)
            for run in latest.get(model, ()):
                _add_run(out, model, run)
        by_model = {model_id: model for model, model_id in ids.items()}
        for (model_id, stream), total in sorted(totals.items()):
            counts = [(r, n) for m, st, r, n in reasons if m == model_id and st == stream]
            for reason, n in top_reasons(counts, total, config.max_reasons):
                out.add("quarantined_rows", (by_model[model_id], stream, reason), n)
        for job in jobs:
            labels = (job.job, job.model or "")
            out.add("job_last_duration_seconds", labels, job.duration_seconds)
            out.add("job_last_run_succeeded", labels, 1.0 if job.succeeded else 0.0)
            if job.last_success_at is not None:
                out.add("job_last_success_timestamp_seconds", labels, job.last_success_at.timestamp())


def _add_run(out: _Families, model: str, run: queries.LatestRun) -> None:
    mv = (model, str(run.version))
    level = VerdictLevel.stored(run.verdict_level, drifted=run.drifted, retrain_worthy=run.retrain_worthy)
    out.add("verdict_level", mv, level.rank)
    out.add("drift_window_end_timestamp_seconds", mv, run.window_end.timestamp())
    out.add("drift_window_rows", mv, run.n_rows)
    seen: set[str] = set()
    for c in run.columns:
        column = label_value(c.column)
        if column in seen:  # two names that differ only in what label_value replaced: one series
            continue
        seen.add(column)
        out.add("drift_score", (*mv, column), c.score)
        out.add("column_drifted", (*mv, column), 1.0 if c.drifted else 0.0)
    out.add("drift_columns_omitted", mv, run.columns_total - len(seen))
    try:
        figures = stored_figures(run.figures)
    except DriftkeeperError as exc:  # figures stored by another version of driftkeeper
        log.warning("metrics: the figures of drift run %s cannot be read: %s", run.run_id, exc)
        return
    if figures is None:
        return
    realized, estimated = figures.realized_performance, figures.estimated_performance
    wrong, outliers = figures.confidently_wrong, figures.confident_outliers
    if realized is not None:
        out.add("accuracy_realized", mv, realized.accuracy)
        out.add("labelled_predictions", mv, realized.n_labelled)
    if estimated is not None:
        out.add("accuracy_estimated", mv, estimated.estimate)
    if wrong is not None:
        out.add("confidently_wrong_rate", mv, wrong.rate)
    if outliers is not None:
        out.add("confident_outlier_rate", mv, outliers.rate)
        out.add("confident_outliers", mv, outliers.count)


def build_registry(
    session_factory: sessionmaker[Session], settings: Settings, *, process: bool = False
) -> CollectorRegistry:
    """A fresh registry (never the global one) with the driftkeeper collector; ``process`` adds the
    process, platform and GC collectors (for the long-running daemon)."""
    registry = CollectorRegistry()
    registry.register(DriftkeeperCollector(session_factory, settings))
    if process:
        from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry
