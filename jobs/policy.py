"""Whether a checked window is retrain-worthy, and why (the reasons are stored with the run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drift import DriftResult
from jobs.config import RetrainPolicy


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
    if policy.confidently_wrong_rise and wrong.get("rose_significantly"):
        reasons.append(
            f"confidently-wrong rate rose to {wrong.get('rate', 0):.1%} (reference {wrong.get('reference_rate') or 0:.1%})"
        )
    outliers = figures.get("confident_outliers") or {}
    limit = policy.confident_outlier_rate_above
    if limit is not None and outliers.get("rate") is not None and outliers["rate"] > limit:
        reasons.append(f"confident outliers at {outliers['rate']:.1%} (> {limit:.0%})")
    estimate = figures.get("estimated_performance") or {}
    drop = policy.estimated_accuracy_drop
    if drop is not None and estimate.get("accuracy") is not None and estimate.get("reference_accuracy") is not None:
        if estimate["reference_accuracy"] - estimate["accuracy"] > drop:
            reasons.append(
                f"estimated accuracy {estimate['accuracy']:.1%} vs {estimate['reference_accuracy']:.1%} on the reference"
            )
    realized = figures.get("realized_performance") or {}
    drop = policy.realized_accuracy_drop
    if drop is not None and realized.get("accuracy") is not None and realized.get("reference_accuracy") is not None:
        if realized["reference_accuracy"] - realized["accuracy"] > drop:
            reasons.append(
                f"realized accuracy {realized['accuracy']:.1%} vs {realized['reference_accuracy']:.1%} on the reference"
                f" ({realized.get('n_labelled', 0)} labels)"
            )
    return RetrainDecision(retrain_worthy=bool(reasons), reasons=tuple(reasons))
