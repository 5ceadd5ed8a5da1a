"""Whether a checked window is retrain-worthy, and why (the reasons are stored with the run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drift import DriftResult
from jobs.config import RetrainPolicy

MIN_LABELS = 30


@dataclass(frozen=True, kw_only=True)
class RetrainDecision:
    retrain_worthy: bool
    reasons: tuple[str, ...]


def retrain_decision(policy: RetrainPolicy, result: DriftResult, figures: dict[str, Any]) -> RetrainDecision:
    """Apply the configured rules; any rule that fires is a reason."""
    reasons: list[str] = []
    if policy.outputs_drifted and result.outputs_drifted:
        drifted = [c.column for c in result.columns if c.kind == "output" and c.drifted]
        reasons.append(f"outputs drifted ({', '.join(drifted[:5])}{'...' if len(drifted) > 5 else ''})")
    if policy.embedding_drifted and result.embedding_drifted:
        reasons.append("embedding drifted")
    features = [c for c in result.columns if c.kind == "feature"]
    if policy.feature_share_above is not None and features:
        share = sum(c.drifted for c in features) / len(features)
        if share > policy.feature_share_above:
            reasons.append(f"{share:.0%} of features drifted (> {policy.feature_share_above:.0%})")
    wrong = figures.get("confidently_wrong") or {}
    if (
        policy.confidently_wrong_rise
        and wrong.get("rose_significantly")
        and (wrong.get("n_labelled") or 0) >= MIN_LABELS
    ):
        rate, reference_rate = wrong.get("rate") or 0.0, wrong.get("reference_rate") or 0.0
        reasons.append(f"confidently-wrong rate rose to {rate:.1%} (reference {reference_rate:.1%})")
    outliers = figures.get("confident_outliers") or {}
    limit = policy.confident_outlier_rate_above
    if limit is not None and outliers.get("rate") is not None and outliers["rate"] > limit:
        reasons.append(f"confident outliers at {outliers['rate']:.1%} (> {limit:.0%})")
    for key, limit, what in (
        ("estimated_performance", policy.estimated_accuracy_drop, "estimated accuracy"),
        ("realized_performance", policy.realized_accuracy_drop, "realized accuracy"),
    ):
        figure = figures.get(key) or {}
        accuracy, reference = figure.get("accuracy"), figure.get("reference_accuracy")
        if key == "realized_performance" and (figure.get("n_labelled") or 0) < MIN_LABELS:
            continue  # a handful of labels says little either way
        if limit is not None and accuracy is not None and reference is not None and reference - accuracy > limit:
            labels = f", {figure['n_labelled']} labels" if "n_labelled" in figure else ""
            reasons.append(f"{what} {accuracy:.1%} vs {reference:.1%} on the reference{labels}")
    masks = figures.get("segmentation") or {}
    iou, reference_iou = masks.get("mean_iou"), masks.get("reference_mean_iou")
    limit = policy.mean_iou_drop
    enough = (masks.get("n_scored") or 0) >= MIN_LABELS
    if limit is not None and iou is not None and reference_iou is not None and enough and reference_iou - iou > limit:
        reasons.append(f"mean IoU {iou:.2f} vs {reference_iou:.2f} on the reference ({masks['n_scored']} masks)")
    return RetrainDecision(retrain_worthy=bool(reasons), reasons=tuple(reasons))
