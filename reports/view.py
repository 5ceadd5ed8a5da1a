"""From the weekly summary dict (schema 1) to what the template shows.

The summary comes from the job layer; every section may be missing or empty. This
module only checks shapes, fills absent keys with ``None``, groups examples for the
thumbnail grids and drops thumbnails that are not small PNG ``data:`` URIs. It
computes no statistics.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from drift.errors import ValidationError
from reports import charts
from storage.statuses import RetrainDecision, WeekStatus

SCHEMA = 1
STATUSES = (WeekStatus.OK, WeekStatus.DRIFT, WeekStatus.RETRAIN, WeekStatus.NO_DATA)
DECISIONS = tuple(RetrainDecision.finished())
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


def _dict(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(f"summary {where} must be an object or null, got {type(value).__name__}")
    return dict(value)


def _list(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError(f"summary {where} must be a list or null, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        d = _dict(item, f"{where}[{i}]")
        if d is None:
            raise ValidationError(f"summary {where}[{i}] must be an object, got null")
        out.append(d)
    return out


def _num(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"summary {where} must be a number or null, got {value!r}")
    return float(value)


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"summary {where} must be an integer or null, got {value!r}")
    return value


def _nums(value: Any, where: str) -> list[float | None]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError(f"summary {where} must be a list of numbers, got {type(value).__name__}")
    return [_num(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _strs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _metrics(value: Any, where: str) -> list[tuple[str, float | None]]:
    d = _dict(value, where) or {}
    return [(str(k), _num(v, f"{where}.{k}")) for k, v in d.items()]


def thumbnail(uri: Any) -> str | None:
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


def evidently_href(name: Any) -> str | None:
    """The evidently page's file name when it is a plain ``.html`` file name in the same folder."""
    if isinstance(name, str) and _FILENAME.fullmatch(name) and ".." not in name:
        return name
    return None


def _column_rows(items: Any, where: str) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(_list(items, where)):
        w = f"{where}[{i}]"
        threshold = _num(item.get("threshold"), f"{w}.threshold")
        trend = [
            {
                "week": str(t.get("week", "?")),
                "score": _num(t.get("score"), f"{w}.trend[{j}].score"),
                "drifted": t.get("drifted"),
            }
            for j, t in enumerate(_list(item.get("trend"), f"{w}.trend"))
        ]
        rows.append(
            {
                "column": str(item.get("column", "?")),
                "method": _text(item.get("method")),
                "score": _num(item.get("score"), f"{w}.score"),
                "p_value": _num(item.get("p_value"), f"{w}.p_value"),
                "effect": _num(item.get("effect"), f"{w}.effect"),
                "threshold": threshold,
                "drifted": bool(item.get("drifted")),
                "spark": charts.sparkline(trend, threshold),
            }
        )
    return rows


def _examples(section: dict[str, Any] | None, where: str, budget: list[int]) -> dict[str, Any] | None:
    """The section with its examples grouped by "true -> predicted", largest group first."""
    if section is None:
        return None
    examples = _list(section.get("examples"), f"{where}.examples")
    groups: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    dropped = 0
    for i, ex in enumerate(examples[:MAX_EXAMPLES]):
        raw = ex.get("thumbnail")
        thumb = thumbnail(raw)
        if thumb is not None and len(thumb) > budget[0]:
            thumb = None
        if thumb is not None:
            budget[0] -= len(thumb)
        elif raw is not None:
            dropped += 1
        true_label = _text(ex.get("true_label"))
        predicted = str(ex.get("predicted_label", "?"))
        groups.setdefault((true_label, predicted), []).append(
            {
                "prediction_id": str(ex.get("prediction_id", "?")),
                "input_uri": _text(ex.get("input_uri")),
                "thumbnail": thumb,
                "true_label": true_label,
                "predicted_label": predicted,
                "confidence": _num(ex.get("confidence"), f"{where}.examples[{i}].confidence"),
                "score": _num(ex.get("score"), f"{where}.examples[{i}].score"),
            }
        )
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0][0] or "", kv[0][1]))
    return {
        "count": _int(section.get("count"), f"{where}.count"),
        "rate": _num(section.get("rate"), f"{where}.rate"),
        "reference_rate": _num(section.get("reference_rate"), f"{where}.reference_rate"),
        "rose_significantly": bool(section.get("rose_significantly")),
        "n_examples": len(examples),
        "n_shown": min(len(examples), MAX_EXAMPLES),
        "dropped_thumbnails": dropped,
        "groups": [{"true": t, "predicted": p, "examples": exs} for (t, p), exs in ordered],
    }


def _calibration(value: Any) -> dict[str, Any] | None:
    cal = _dict(value, "calibration")
    if cal is None:
        return None
    out: dict[str, Any] = {}
    series: dict[str, list[tuple[float, float, int]]] = {}
    for side in ("reference", "current"):
        part = _dict(cal.get(side), f"calibration.{side}")
        if part is None:
            out[side] = None
            continue
        bins = []
        for i, b in enumerate(_list(part.get("bins"), f"calibration.{side}.bins")):
            conf = _num(b.get("confidence"), f"calibration.{side}.bins[{i}].confidence")
            acc = _num(b.get("accuracy"), f"calibration.{side}.bins[{i}].accuracy")
            if conf is not None and acc is not None:
                bins.append((conf, acc, _int(b.get("count"), f"calibration.{side}.bins[{i}].count") or 0))
        series[side] = bins
        out[side] = {"ece": _num(part.get("ece"), f"calibration.{side}.ece"), "n_bins": len(bins)}
    out["chart"] = charts.reliability_svg(series.get("reference"), series.get("current"))
    return out


def _outputs(value: Any) -> dict[str, Any] | None:
    outputs = _dict(value, "outputs")
    if outputs is None:
        return None
    dist = _dict(outputs.get("class_distribution"), "outputs.class_distribution")
    conf = _dict(outputs.get("confidence"), "outputs.confidence")
    dist_svg: Markup | None = None
    if dist is not None:
        labels = _strs(dist.get("labels"))
        dist_svg = charts.class_distribution_svg(
            labels,
            _nums(dist.get("reference"), "outputs.class_distribution.reference"),
            _nums(dist.get("current"), "outputs.class_distribution.current"),
        )
    conf_svg: Markup | None = None
    if conf is not None:
        edges = [e for e in _nums(conf.get("edges"), "outputs.confidence.edges") if e is not None]
        conf_svg = charts.confidence_histogram_svg(
            edges,
            _nums(conf.get("reference"), "outputs.confidence.reference"),
            _nums(conf.get("current"), "outputs.confidence.current"),
        )
    return {
        "columns": _column_rows(outputs.get("columns"), "outputs.columns"),
        "class_distribution": dist_svg,
        "confidence": conf_svg,
    }


def _performance(value: Any) -> dict[str, Any] | None:
    perf = _dict(value, "performance")
    if perf is None:
        return None
    keys = (
        "estimated_accuracy",
        "estimate_low",
        "estimate_high",
        "realized_accuracy",
        "realized_low",
        "realized_high",
        "label_coverage",
    )
    weeks = []
    for i, w in enumerate(_list(perf.get("weeks"), "performance.weeks")):
        row: dict[str, Any] = {
            "week": str(w.get("week", "?")),
            "n_labelled": _int(w.get("n_labelled"), f"performance.weeks[{i}].n_labelled"),
        }
        row.update({k: _num(w.get(k), f"performance.weeks[{i}].{k}") for k in keys})
        weeks.append(row)
    return {
        "weeks": weeks,
        "trustworthy": bool(perf.get("trustworthy")),
        "warning": _text(perf.get("warning")),
        "chart": charts.accuracy_svg(weeks),
    }


def _verdict(value: Any) -> dict[str, Any] | None:
    verdict = _dict(value, "verdict")
    if verdict is None:
        return None
    status = verdict.get("status", "no-data")
    if status not in STATUSES:
        raise ValidationError(f"summary verdict.status {status!r} is not one of {', '.join(STATUSES)}")
    return {"status": status, "headline": _text(verdict.get("headline")), "reasons": _strs(verdict.get("reasons"))}


def _retrains(value: Any) -> list[dict[str, Any]]:
    rows = []
    for i, r in enumerate(_list(value, "retrains")):
        decision = r.get("decision")
        if decision not in DECISIONS:
            raise ValidationError(f"summary retrains[{i}].decision {decision!r} is not one of {', '.join(DECISIONS)}")
        sizes = _dict(r.get("export_sizes"), f"retrains[{i}].export_sizes") or {}
        rows.append(
            {
                "at": _text(r.get("at")),
                "version": r.get("version"),
                "decision": decision,
                "reasons": _strs(r.get("reasons")),
                "metrics": _metrics(r.get("metrics"), f"retrains[{i}].metrics"),
                "export_sizes": [
                    (str(k), n)
                    for k, v in sizes.items()
                    if (n := _int(v, f"retrains[{i}].export_sizes.{k}")) is not None
                ],
            }
        )
    return rows


def _segmentation(figure: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Mask quality of a segmentation model's week (absent for classifiers)."""
    if figure is None:
        return None
    per_class = _dict(figure.get("per_class_iou"), "segmentation.per_class_iou") or {}
    return {
        "mean_iou": figure.get("mean_iou"),
        "reference_mean_iou": figure.get("reference_mean_iou"),
        "n_scored": _int(figure.get("n_scored") or 0, "segmentation.n_scored"),
        "n_labelled": _int(figure.get("n_labelled") or 0, "segmentation.n_labelled"),
        "n_skipped": _int(figure.get("n_skipped") or 0, "segmentation.n_skipped"),
        "classes": [(str(label), iou) for label, iou in per_class.items()],
    }


def build_view(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the weekly template shows, with every key present (``None`` = no data).

    Raises:
        ValidationError: the summary is not schema 1, or a section has the wrong shape.
    """
    if not isinstance(summary, Mapping):
        raise ValidationError(f"summary must be an object, got {type(summary).__name__}")
    if summary.get("schema") != SCHEMA:
        raise ValidationError(f"summary schema {summary.get('schema')!r} is not supported; allowed: {SCHEMA}")
    window = _dict(summary.get("window"), "window") or {}
    champion = _dict(summary.get("champion"), "champion")
    embedding = _dict(summary.get("embedding"), "embedding")
    quality = _dict(summary.get("data_quality"), "data_quality")
    budget = [THUMBNAIL_BUDGET_CHARS]
    features = _column_rows(summary.get("features"), "features")
    return {
        "model": str(summary.get("model") or "unknown model"),
        "week": str(summary.get("week") or "unknown week"),
        "window": {"start": _text(window.get("start")), "end": _text(window.get("end"))},
        "generated_at": _text(summary.get("generated_at")),
        "verdict": _verdict(summary.get("verdict")),
        "champion": None
        if champion is None
        else {
            "version": champion.get("version"),
            "promoted_at": _text(champion.get("promoted_at")),
            "metrics": _metrics(champion.get("metrics"), "champion.metrics"),
            "export_dir": _text(champion.get("export_dir")),
        },
        "segmentation": _segmentation(_dict(summary.get("segmentation"), "segmentation")),
        "runs": [
            {
                "version": r.get("version"),
                "n_rows": _int(r.get("n_rows"), f"runs[{i}].n_rows"),
                "drifted": r.get("drifted"),
                "outputs_drifted": r.get("outputs_drifted"),
                "embedding_drifted": r.get("embedding_drifted"),
                "retrain_worthy": r.get("retrain_worthy"),
                "reasons": _strs(r.get("reasons")),
                "policy": _text(r.get("policy")),
            }
            for i, r in enumerate(_list(summary.get("runs"), "runs"))
        ],
        "features": features,
        "n_features_drifted": sum(1 for f in features if f["drifted"]),
        "max_visible_features": MAX_VISIBLE_FEATURES,
        "outputs": _outputs(summary.get("outputs")),
        "embedding": None
        if embedding is None
        else {
            "method": _text(embedding.get("method")),
            "score": _num(embedding.get("score"), "embedding.score"),
            "p_value": _num(embedding.get("p_value"), "embedding.p_value"),
            "drifted": bool(embedding.get("drifted")),
        },
        "calibration": _calibration(summary.get("calibration")),
        "performance": _performance(summary.get("performance")),
        "confidently_wrong": _examples(
            _dict(summary.get("confidently_wrong"), "confidently_wrong"), "confidently_wrong", budget
        ),
        "confident_outliers": _examples(
            _dict(summary.get("confident_outliers"), "confident_outliers"), "confident_outliers", budget
        ),
        "retrains": _retrains(summary.get("retrains")),
        "data_quality": None
        if quality is None
        else {
            "rows": _int(quality.get("rows"), "data_quality.rows"),
            "labels": _int(quality.get("labels"), "data_quality.labels"),
            "quarantined": _int(quality.get("quarantined"), "data_quality.quarantined"),
            "reasons": [
                (str(r.get("reason", "?")), _int(r.get("count"), f"data_quality.reasons[{i}].count"))
                for i, r in enumerate(_list(quality.get("reasons"), "data_quality.reasons"))
            ],
        },
        "evidently_report": summary.get("evidently_report"),
        "evidently_href": evidently_href(summary.get("evidently_report")),
    }
