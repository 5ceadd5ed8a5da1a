"""Whether a checked window is retrain-worthy, and why (the reasons are stored with the run)."""

from __future__ import annotations

from dataclasses import dataclass

from drift import DriftResult
from jobs.check.figures import MIN_LABELS, CheckFigures
from jobs.config import RetrainPolicy


@dataclass(frozen=True, kw_only=True)
class RetrainDecision:
    retrain_worthy: bool
    reasons: tuple[str, ...]


def retrain_decision(policy: RetrainPolicy, result: DriftResult, figures: CheckFigures) -> RetrainDecision:
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
    wrong = figures.confidently_wrong
    if (
        policy.confidently_wrong_rise
        and wrong is not None
        and wrong.rose_significantly
        and wrong.n_labelled >= MIN_LABELS
    ):
        rate, reference_rate = wrong.rate or 0.0, wrong.reference_rate or 0.0
        reasons.append(f"confidently-wrong rate rose to {rate:.1%} (reference {reference_rate:.1%})")
    outliers = figures.confident_outliers
    limit = policy.confident_outlier_rate_above
    if limit is not None and outliers is not None and outliers.rate > limit:
        reasons.append(f"confident outliers at {outliers.rate:.1%} (> {limit:.0%})")
    estimated = figures.estimated_performance
    limit = policy.estimated_accuracy_drop
    if limit is not None and estimated is not None and estimated.reference_accuracy - estimated.accuracy > limit:
        reasons.append(
            f"estimated accuracy {estimated.accuracy:.1%} vs {estimated.reference_accuracy:.1%} on the reference"
        )
    realized = figures.realized_performance
    limit = policy.realized_accuracy_drop
    if (
        limit is not None
        and realized is not None
        and realized.enough_labels  # a handful of labels says little either way
        and realized.accuracy is not None
        and realized.reference_accuracy is not None
        and realized.reference_accuracy - realized.accuracy > limit
    ):
        reasons.append(
            f"realized accuracy {realized.accuracy:.1%} vs {realized.reference_accuracy:.1%} on the reference, "
            f"{realized.n_labelled} labels"
        )
    masks = figures.segmentation
    limit = policy.mean_iou_drop
    if (
        limit is not None
        and masks is not None
        and masks.mean_iou is not None
        and masks.reference_mean_iou is not None
        and masks.n_scored >= MIN_LABELS
        and masks.reference_mean_iou - masks.mean_iou > limit
    ):
        reasons.append(
            f"mean IoU {masks.mean_iou:.2f} vs {masks.reference_mean_iou:.2f} on the reference ({masks.n_scored} masks)"
        )
    return RetrainDecision(retrain_worthy=bool(reasons), reasons=tuple(reasons))
