"""A realistic weekly summary (schema 2, as ``summary.json`` holds it), with hostile strings where users type text."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from reports.summary import WeeklySummary

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
MATH = "$\\frac{1}{0}$ & {{ 7*7 }} 'q'"
HOSTILE = (SCRIPT, IMG, MATH)
SECTION_IDS = (
    "verdict",
    "serving",
    "features",
    "outputs",
    "embedding",
    "calibration",
    "performance",
    "confidently-wrong",
    "confident-outliers",
    "retrains",
    "data-quality",
    "review",
)
# the keys of summary.json (schema 2), in their order: the contract
SCHEMA_KEYS = [
    "schema",
    "model",
    "week",
    "window",
    "generated_at",
    "verdict",
    "serving",
    "actions",
    "runs",
    "features",
    "outputs",
    "embedding",
    "calibration",
    "performance",
    "confidently_wrong",
    "confident_outliers",
    "segmentation",
    "slices",
    "baselines",
    "retrains",
    "data_quality",
    "review",
    "evidently_report",
]
WEEKS = [f"2026-W{w:02d}" for w in range(31, 39)]


def png_data_uri(text: str, size: int = 32, noise: bool = False, seed: int = 0) -> str:
    """A small grayscale PNG with ``text`` drawn on it (``noise``: incompressible pixels, a worst case)."""
    if noise:
        pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size), dtype=np.uint8)
        img = Image.fromarray(pixels, mode="L")
    else:
        img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(img).text((size // 3, size // 4), text, fill=255)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _trend(scores: list[float | None], threshold: float) -> list[dict[str, Any]]:
    return [
        {"week": w, "score": s, "drifted": None if s is None else s > threshold}
        for w, s in zip(WEEKS, scores, strict=True)
    ]


def _column(name: str, kind: str, score: float, threshold: float, trend: list[float | None]) -> dict[str, Any]:
    return {
        "column": name,
        "kind": kind,
        "method": "psi" if kind == "feature" else "chi2",
        "score": score,
        "p_value": None if kind == "feature" else 1e-6,
        "effect": round(score / 2, 4),
        "threshold": threshold,
        "drifted": score > threshold,
        "trend": _trend([*trend, score], threshold),
    }


def _example(i: int, true: str | None, predicted: str, confidence: float, **extra: Any) -> dict[str, Any]:
    return {
        "prediction_id": f"pred-{i:05d}",
        "input_uri": f"s3://images/2026-09/{i:05d}.png",
        "thumbnail": png_data_uri(predicted),
        "true_label": true,
        "predicted_label": predicted,
        "confidence": confidence,
        **extra,
    }


def make_summary() -> dict[str, Any]:
    labels = [str(d) for d in range(9)] + [SCRIPT]
    ref = [0.1] * 10
    cur = [0.06, 0.07, 0.08, 0.09, 0.1, 0.1, 0.1, 0.1, 0.12, 0.18]
    edges = [round(0.5 + 0.05 * i, 2) for i in range(11)]
    wrong = [
        _example(1, "7", "1", 0.97),
        _example(2, "7", "1", 0.95),
        _example(3, "4", "9", 0.96),
        _example(4, SCRIPT, IMG, 0.99),
        _example(5, "3", "8", 0.93),
    ]
    wrong[4]["input_uri"] = IMG
    outliers = [
        _example(10, None, "0", 0.98, score=7.5),
        _example(11, None, "0", 0.97, score=6.9),
        _example(12, "2", "2", 0.95, score=6.1),
    ]
    return {
        "schema": 2,
        "model": "digits-cnn",
        "week": "2026-W38",
        "window": {"start": "2026-09-14T00:00:00+00:00", "end": "2026-09-21T00:00:00+00:00"},
        "generated_at": "2026-09-21T06:00:12+00:00",
        "verdict": {
            "status": "act",
            "headline": "Input drift on 3 features and output drift; retraining recommended",
            "reasons": [
                {"kind": "drift", "level": "watch", "impact": 20.0, "text": "3 of 6 features drifted (psi > 0.2)"},
                {
                    "kind": "drift",
                    "level": "watch",
                    "impact": 8.0,
                    "text": f"class {SCRIPT} share rose from 10% to 18%",
                },
                {"kind": "policy", "level": "act", "impact": 0.0, "text": IMG},
            ],
            "revised": {"at": "2026-10-05T02:00:00+00:00", "previous": "watch", "why": f"310 more labels: {MATH}"},
        },
        "serving": {
            "version": 3,
            "promoted_at": "2026-08-02T09:14:00+00:00",
            "metrics": {"accuracy": 0.9712, "macro_f1": 0.9688, MATH: 1},
            "export_dir": "/var/driftkeeper/exports/digits-cnn/3",
            "champion_now": True,
            "reference_week": "2026-W31",
        },
        "actions": [{"kind": "label", "text": f"label these 24 predictions {SCRIPT}", "href": "to_label.csv"}],
        "runs": [
            {
                "version": 3,
                "n_rows": 48213,
                "drifted": True,
                "outputs_drifted": True,
                "embedding_drifted": False,
                "retrain_worthy": True,
                "reasons": ["features", "outputs"],
                "policy": "any-2-of-3",
            }
        ],
        "features": [
            _column("brightness", "feature", 0.61, 0.2, [0.02, 0.03, 0.05, 0.04, 0.12, 0.33, 0.48]),
            _column(SCRIPT, "feature", 0.35, 0.2, [0.01, None, 0.02, 0.03, 0.02, 0.15, 0.22]),
            _column(IMG, "feature", 0.24, 0.2, [0.03, 0.02, 0.02, 0.03, 0.05, 0.09, 0.18]),
            _column("contrast", "feature", 0.08, 0.2, [0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.07]),
            _column(MATH, "feature", 0.03, 0.2, [None, None, 0.02, 0.03, 0.03, 0.02, 0.04]),
            _column("ink_ratio", "feature", 0.01, 0.2, [0.01, 0.01, 0.02, 0.01, 0.01, 0.01, 0.02]),
        ],
        "outputs": {
            "columns": [_column("predicted_label", "output", 0.41, 0.1, [0.01, 0.02, 0.01, 0.02, 0.05, 0.2, 0.33])],
            "class_distribution": {"labels": labels, "reference": ref, "current": cur},
            "confidence": {
                "edges": edges,
                "reference": [0.01, 0.01, 0.02, 0.02, 0.03, 0.04, 0.06, 0.1, 0.2, 0.51],
                "current": [0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.12, 0.17, 0.28],
            },
        },
        "embedding": {"method": "mmd", "score": 0.042, "p_value": 0.21, "drifted": False},
        "calibration": {
            "reference": {
                "ece": 0.018,
                "bins": [
                    {"confidence": c, "accuracy": c - 0.01, "count": 200 + i}
                    for i, c in enumerate([0.55, 0.7, 0.85, 0.97])
                ],
            },
            "current": {
                "ece": 0.074,
                "bins": [
                    {"confidence": c, "accuracy": c - 0.09, "count": 150 + i}
                    for i, c in enumerate([0.55, 0.7, 0.85, 0.97])
                ],
            },
        },
        "performance": {
            "weeks": [
                {
                    "week": w,
                    "estimated_accuracy": 0.97 - 0.01 * max(0, i - 4),
                    "estimate_low": 0.95 - 0.01 * max(0, i - 4),
                    "estimate_high": 0.98 - 0.01 * max(0, i - 4),
                    "realized_accuracy": None if i >= 6 else 0.968 - 0.015 * max(0, i - 4),
                    "realized_low": None if i >= 6 else 0.95 - 0.015 * max(0, i - 4),
                    "realized_high": None if i >= 6 else 0.98 - 0.015 * max(0, i - 4),
                    "label_coverage": [0.9, 0.88, 0.86, 0.85, 0.8, 0.6, 0.2, 0.05][i],
                    "n_labelled": [4100, 4000, 3900, 3800, 3700, 2900, 900, 210][i],
                }
                for i, w in enumerate(WEEKS)
            ],
            "trustworthy": False,
            "warning": "Inputs drifted: the confidence-based estimate assumes no covariate shift.",
            "classes": {
                "labels": ["7", SCRIPT],
                "precision": [0.91, None],
                "recall": [0.227, 0.5],
                "f1": [0.36, None],
                "support": [150, 60],
                "confusion_matrix": [[34, 116], [30, 30]],
                "n_labelled": 210,
                "label_coverage": 0.05,
            },
        },
        "confidently_wrong": {
            "count": 37,
            "rate": 0.0031,
            "reference_rate": 0.0009,
            "rose_significantly": True,
            "examples": wrong,
        },
        "confident_outliers": {"count": 12, "rate": 0.00025, "examples": outliers},
        "segmentation": None,
        "slices": None,
        "baselines": None,
        "retrains": [
            {
                "at": "2026-09-20T02:00:00+00:00",
                "version": 4,
                "decision": "promoted",
                "reasons": ["accuracy on recent labelled data 0.962 > champion 0.941"],
                "metrics": {"accuracy": 0.962, "champion_accuracy": 0.941},
                "export_sizes": {"float32.tflite": 1_245_184, "int8.tflite": 331_776},
            },
            {
                "at": "2026-09-19T02:00:00+00:00",
                "version": None,
                "decision": "failed",
                "reasons": [IMG],
                "metrics": {},
                "export_sizes": {},
            },
        ],
        "data_quality": {
            "rows": 48391,
            "labels": 9120,
            "quarantined": 178,
            "reasons": [{"reason": "missing field 'confidence'", "count": 120}, {"reason": SCRIPT, "count": 58}],
            "label_delay_days": {"n": 9120, "median": 6.5, "p90": 18.25},
        },
        "review": {"done": 312, "skipped": 9, "left": 1480, "per_minute": 34.5, "agreement": 0.62},
        "evidently_report": "evidently.html",
    }


def make_weekly() -> WeeklySummary:
    """The sample, typed."""
    return WeeklySummary.from_dict(make_summary())
