"""The retrain-worthiness rules, on hand-made results and figures."""

from __future__ import annotations

import pytest

from drift import ColumnDrift, DriftResult
from jobs.check.policy import retrain_decision
from jobs.config import RetrainPolicy


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
    decision = retrain_decision(RetrainPolicy(), _result(False, False), figures)
    assert decision.reasons == expected and decision.retrain_worthy is bool(expected)


def test_drifted_outputs_and_embedding_are_reasons_unless_disabled():
    result = _result(True, False, embedding=True)
    assert retrain_decision(RetrainPolicy(), result, {}).reasons == ("outputs drifted (prob_0)", "embedding drifted")
    quiet = RetrainPolicy(outputs_drifted=False, embedding_drifted=False)
    assert retrain_decision(quiet, result, {}).retrain_worthy is False
