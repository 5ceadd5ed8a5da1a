"""From the typed weekly summary (:class:`reports.summary.WeeklySummary`) to what the template shows.

The types guarantee the shapes; this module only draws the charts, groups examples for the
thumbnail grids, drops thumbnails that are not small PNG ``data:`` URIs (they come from
production data) and links the evidently page only when its name is a plain file name in the
same folder. It computes no statistics.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

from reports import charts
from reports.summary import (
    Calibration,
    ColumnRow,
    ConfidentlyWrong,
    ConfidentOutliers,
    Example,
    Outputs,
    Performance,
    Segmentation,
    WeeklySummary,
)

PNG_DATA_PREFIX = "data:image/png;base64,"
MAX_THUMBNAIL_CHARS = 48_000
"""A thumbnail longer than this (as a data URI) is not embedded."""
THUMBNAIL_BUDGET_CHARS = 1_400_000
"""All embedded thumbnails together stay under this, so the page stays under 2 MB."""
MAX_EXAMPLES = 60
"""At most this many examples per grid."""
MAX_VISIBLE_FEATURES = 25
"""Further feature rows go into a collapsed block."""

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.html?")


def thumbnail(uri: str | None) -> str | None:
    """``uri`` if it is a well-formed, not too large ``data:image/png;base64,`` URI of a PNG, else ``None``."""
    if not isinstance(uri, str) or not uri.startswith(PNG_DATA_PREFIX) or len(uri) > MAX_THUMBNAIL_CHARS:
        return None
    payload = uri[len(PNG_DATA_PREFIX) :]
    if len(payload) < 12 or len(payload) % 4 or not _BASE64.fullmatch(payload):
        return None
    try:
        head = base64.b64decode(payload[:12], validate=True)
    except (binascii.Error, ValueError):
        return None
    return uri if head.startswith(_PNG_MAGIC) else None


def evidently_href(name: str | None) -> str | None:
    """The evidently page's file name when it is a plain ``.html`` file name in the same folder."""
    if isinstance(name, str) and _FILENAME.fullmatch(name) and ".." not in name:
        return name
    return None


def _column_rows(columns: Sequence[ColumnRow] | None) -> list[dict[str, Any]]:
    return [
        {
            "column": c.column,
            "method": c.method,
            "score": c.score,
            "p_value": c.p_value,
            "effect": c.effect,
            "threshold": c.threshold,
            "drifted": c.drifted,
            "spark": charts.sparkline([t.to_dict() for t in c.trend], c.threshold),
        }
        for c in columns or ()
    ]


def _examples(section: ConfidentlyWrong | ConfidentOutliers | None, budget: list[int]) -> dict[str, Any] | None:
    """The section with its examples grouped by "true -> predicted", largest group first."""
    if section is None:
        return None
    examples: Sequence[Example] = section.examples
    groups: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    dropped = 0
    for ex in examples[:MAX_EXAMPLES]:
        thumb = thumbnail(ex.thumbnail)
        if thumb is not None and len(thumb) > budget[0]:
            thumb = None
        if thumb is not None:
            budget[0] -= len(thumb)
        elif ex.thumbnail is not None:
            dropped += 1
        groups.setdefault((ex.true_label, ex.predicted_label), []).append(
            {
                "prediction_id": ex.prediction_id,
                "input_uri": ex.input_uri,
                "thumbnail": thumb,
                "true_label": ex.true_label,
                "predicted_label": ex.predicted_label,
                "confidence": ex.confidence,
                "score": getattr(ex, "score", None),
            }
        )
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0][0] or "", kv[0][1]))
    wrong = section if isinstance(section, ConfidentlyWrong) else None
    return {
        "count": section.count,
        "rate": section.rate,
        "reference_rate": wrong.reference_rate if wrong is not None else None,
        "rose_significantly": wrong.rose_significantly if wrong is not None else False,
        "n_examples": len(examples),
        "n_shown": min(len(examples), MAX_EXAMPLES),
        "dropped_thumbnails": dropped,
        "groups": [{"true": t, "predicted": p, "examples": exs} for (t, p), exs in ordered],
    }


def _calibration(cal: Calibration | None) -> dict[str, Any] | None:
    if cal is None:
        return None
    out: dict[str, Any] = {}
    series: dict[str, list[tuple[float, float, int]]] = {}
    for side, curve in (("reference", cal.reference), ("current", cal.current)):
        if curve is None:
            out[side] = None
            continue
        series[side] = [(b.confidence, b.accuracy, b.count) for b in curve.bins]
        out[side] = {"ece": curve.ece, "n_bins": len(curve.bins)}
    out["chart"] = charts.reliability_svg(series.get("reference"), series.get("current"))
    return out


def _outputs(outputs: Outputs | None) -> dict[str, Any] | None:
    if outputs is None:
        return None
    dist, conf = outputs.class_distribution, outputs.confidence
    dist_svg = None if dist is None else charts.class_distribution_svg(dist.labels, dist.reference, dist.current)
    conf_svg = None if conf is None else charts.confidence_histogram_svg(conf.edges, conf.reference, conf.current)
    return {"columns": _column_rows(outputs.columns), "class_distribution": dist_svg, "confidence": conf_svg}


def _performance(perf: Performance | None) -> dict[str, Any] | None:
    if perf is None:
        return None
    return {
        "weeks": perf.weeks,
        "trustworthy": perf.trustworthy,
        "warning": perf.warning,
        "chart": charts.accuracy_svg([w.to_dict() for w in perf.weeks]),
    }


def _segmentation(figure: Segmentation | None) -> dict[str, Any] | None:
    """Mask quality of a segmentation model's week (absent for classifiers)."""
    if figure is None:
        return None
    return {
        "mean_iou": figure.mean_iou,
        "reference_mean_iou": figure.reference_mean_iou,
        "n_scored": figure.n_scored,
        "n_labelled": figure.n_labelled,
        "n_skipped": figure.n_skipped,
        "classes": list(figure.per_class_iou.items()),
    }


METRIC_NAMES = {
    "test_accuracy": "accuracy on the original test set",
    "recent_accuracy": "accuracy on held-out recent data (the gate's claim)",
    "recent_accuracy_unweighted": "accuracy on held-out recent data, unweighted",
    "recent_confidently_wrong_rate": "confidently wrong on held-out recent data",
    "champion_test_accuracy": "previous champion: accuracy on the original test set",
    "champion_recent_accuracy": "previous champion: accuracy on held-out recent data",
    "champion_recent_accuracy_unweighted": "previous champion: accuracy on held-out recent data, unweighted",
    "champion_recent_confidently_wrong_rate": "previous champion: confidently wrong on held-out recent data",
    "n_holdout": "held-out recent samples",
    "n_holdout_drifted": "held-out samples from the drifted window",
    "drifted_weight": "weight of the drifted window in the gate",
}


def readable_metric(key: str) -> str:
    """A metric key as an owner reads it (unknown keys with their underscores as spaces)."""
    return METRIC_NAMES.get(key, key.replace("_", " "))


def _classes(performance: Performance | None) -> dict[str, Any] | None:
    classes = performance.classes if performance is not None else None
    if classes is None:
        return None
    return {
        "n_labelled": classes.n_labelled,
        "label_coverage": classes.label_coverage,
        "labels": classes.labels,
        "rows": [
            {"label": label, "precision": p, "recall": r, "f1": f, "support": n}
            for label, p, r, f, n in zip(
                classes.labels, classes.precision, classes.recall, classes.f1, classes.support, strict=True
            )
        ],
        "matrix": list(zip(classes.labels, classes.confusion_matrix, strict=True)),
    }


def build_view(summary: WeeklySummary) -> dict[str, Any]:
    """Everything the weekly template shows, with every key present (``None`` = no data)."""
    budget = [THUMBNAIL_BUDGET_CHARS]
    features = _column_rows(summary.features)
    serving, quality = summary.serving, summary.data_quality
    return {
        "model": summary.model,
        "week": summary.week,
        "window": summary.window,
        "generated_at": summary.generated_at,
        "verdict": summary.verdict,
        "actions": summary.actions,
        "serving": None
        if serving is None
        else {
            "version": serving.version,
            "promoted_at": serving.promoted_at,
            "metrics": [(readable_metric(k), m) for k, m in serving.metrics.items()],
            "export_dir": serving.export_dir,
            "champion_now": serving.champion_now,
        },
        "classes": _classes(summary.performance),
        "slices": summary.slices,
        "review": summary.review,
        "baselines": summary.baselines,
        "segmentation": _segmentation(summary.segmentation),
        "runs": summary.runs,
        "features": features,
        "n_features_drifted": sum(1 for f in features if f["drifted"]),
        "max_visible_features": MAX_VISIBLE_FEATURES,
        "outputs": _outputs(summary.outputs),
        "embedding": summary.embedding,
        "calibration": _calibration(summary.calibration),
        "performance": _performance(summary.performance),
        "confidently_wrong": _examples(summary.confidently_wrong, budget),
        "confident_outliers": _examples(summary.confident_outliers, budget),
        "retrains": [
            {
                "at": r.at,
                "version": r.version,
                "decision": r.decision,
                "reasons": r.reasons,
                "metrics": list(r.metrics.items()),
                "export_sizes": list(r.export_sizes.items()),
            }
            for r in summary.retrains
        ],
        "data_quality": None
        if quality is None
        else {
            "rows": quality.rows,
            "labels": quality.labels,
            "quarantined": quality.quarantined,
            "reasons": [(r.reason, r.count) for r in quality.reasons],
            "label_delay": quality.label_delay_days,
        },
        "evidently_report": summary.evidently_report,
        "evidently_href": evidently_href(summary.evidently_report),
    }
