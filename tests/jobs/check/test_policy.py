"""The retrain-worthiness rules, on hand-made results and figures."""

from __future__ import annotations

import pytest

from drift import ColumnDrift, DriftResult
from jobs.check.figures import CheckFigures
from jobs.check.policy import retrain_decision
from jobs.config import RetrainPolicy

# complete figures, each overridden in part by the cases below
DEFAULTS = {
    "confidently_wrong": {
        "threshold": 0.9,
        "n_labelled": 0,
        "n_confident": 0,
        "n_errors": 0,
        "rate": None,
        "reference_errors": None,
        "reference_n": None,
        "reference_rate": None,
        "p_value": None,
        "alpha": 0.05,
        "rose_significantly": False,
    },
    "confident_outliers": {"count": 0, "rate": 0.0, "threshold": 3.0, "min_confidence": 0.9, "method": "mahalanobis"},
    "estimated_performance": {
        "estimate": 0.9,
        "ci": [0.85, 0.95],
        "std_error": 0.02,
        "std_error_sampling": 0.01,
        "std_error_calibration": 0.01,
        "n": 100,
        "n_reference": 100,
        "mean_confidence": 0.9,
        "confidence_level": 0.95,
        "accuracy": 0.9,
        "reference_accuracy": 0.9,
        "reference_realized_accuracy": 0.9,
        "trustworthy": True,
        "warning": None,
    },
    "realized_performance": {
        "labels": ["a", "b"],
        "n_labelled": 0,
        "n_predictions": 100,
        "label_coverage": 0.0,
        "accuracy": None,
        "accuracy_ci": [None, None],
        "confidence_level": 0.95,
        "macro_f1": None,
        "per_class_recall": {},
        "per_class_precision": {},
        "per_class_f1": {},
        "per_class_support": {},
        "confusion_matrix": [[0, 0], [0, 0]],
    },
    "segmentation": {
        "iou_threshold": 0.5,
        "n_labelled": 0,
        "n_with_masks": 0,
        "n_scored": 0,
        "n_skipped": 0,
        "skipped": {},
        "mean_iou": None,
        "per_class_iou": {},
        "reference_mean_iou": None,
    },
}


def typed(parts: dict) -> CheckFigures:
    return CheckFigures.from_dict({"n_rows": 100} | {key: DEFAULTS[key] | value for key, value in parts.items()})


def _result(*drifted_outputs: bool, embedding: bool | None = None) -> DriftResult:
    columns = tuple(
        ColumnDrift(column=f"prob_{i}", kind="output", method="ks", score=0.5, p_value=0.001, threshold=0.05, drifted=d)
        for i, d in enumerate(drifted_outputs)
    )
    return DriftResult(
        drifted=any(drifted_outputs),
        columns=columns,
        share_drifted=0.0,
        outputs_drifted=any(drifted_outputs),
        embedding_drifted=embedding,
        engine="profile",
        policy="test",
        n_reference=100,
        n_current=100,
    )


@pytest.mark.parametrize(
    "figures, expected",
    [
        ({}, ()),
        (
            {"confidently_wrong": {"rose_significantly": True, "rate": 0.2, "reference_rate": 0.01, "n_labelled": 10}},
            (),
        ),
        (
            {"confidently_wrong": {"rose_significantly": True, "rate": 0.2, "reference_rate": 0.01, "n_labelled": 40}},
            ("confidently-wrong rate rose to 20.0% (reference 1.0%)",),
        ),
        ({"confident_outliers": {"rate": 0.08}}, ("confident outliers at 8.0% (> 5%)",)),
        (
            {"estimated_performance": {"accuracy": 0.7, "reference_accuracy": 0.9}},
            ("estimated accuracy 70.0% vs 90.0% on the reference",),
        ),
        ({"realized_performance": {"accuracy": 0.5, "reference_accuracy": 0.9, "n_labelled": 12}}, ()),
        (
            {"segmentation": {"mean_iou": 0.4, "reference_mean_iou": 0.8, "n_scored": 50}},
            ("mean IoU 0.40 vs 0.80 on the reference (50 masks)",),
        ),
        ({"segmentation": {"mean_iou": 0.75, "reference_mean_iou": 0.8, "n_scored": 50}}, ()),
    ],
    ids=[
        "nothing",
        "cw-few-labels",
        "cw-rose",
        "outliers",
        "estimate-drop",
        "realized-few-labels",
        "iou-drop",
        "iou-small-drop",
    ],
)
def test_each_rule_fires_with_its_reason(figures, expected):
    decision = retrain_decision(RetrainPolicy(), _result(False, False), typed(figures))
    assert decision.reasons == expected and decision.retrain_worthy is bool(expected)


def test_drifted_outputs_and_embedding_are_reasons_unless_disabled():
    result = _result(True, False, embedding=True)
    nothing = typed({})
    assert retrain_decision(RetrainPolicy(), result, nothing).reasons == (
        "outputs drifted (prob_0)",
        "embedding drifted",
    )
    quiet = RetrainPolicy(outputs_drifted=False, embedding_drifted=False)
    assert retrain_decision(quiet, result, nothing).retrain_worthy is False
