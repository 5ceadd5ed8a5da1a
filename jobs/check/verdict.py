"""One verdict per checked window that integrates every finding, ranked by impact.

The retrain policy (:mod:`jobs.check.policy`) says whether to retrain; the verdict says what
the window means to its owner: ``ok``, ``watch`` or ``act``, with its concerns. Impact comes
first: a window whose realized accuracy is measurably much worse than its reference is never
``ok``, whatever the drift tests say, and the outputs of a model count as one finding, not one
per probability column.
"""

from __future__ import annotations

from drift import DriftResult
from drift.concern import Concern, Verdict, VerdictLevel
from jobs.check.blind import WindowQuality
from jobs.check.figures import MIN_LABELS, CheckFigures
from jobs.config import ModelSettings

MUCH_WORSE = 0.10  # realized accuracy this far below the reference...
MUCH_WORSE_LABELS = 100  # ...on at least this many labels is always "act"
QUARANTINE_WATCH = 0.05  # a window with this share of its rows quarantined is watched
WEAK_RECALL = 0.5  # a class recalled less often than this (on MIN_LABELS of its labels) is watched

ACT, WATCH = VerdictLevel.ACT, VerdictLevel.WATCH


def window_verdict(
    model: ModelSettings,
    result: DriftResult | None,
    figures: CheckFigures | None,
    *,
    retrain_reasons: tuple[str, ...] = (),
    quality: WindowQuality | None = None,
    gate_claim: float | None = None,
) -> Verdict:
    """The verdict of one window, from what its check found.

    ``retrain_reasons``: why the retrain policy fired (none: it did not); ``quality``: the
    window's accepted and quarantined rows; ``gate_claim``: the recent-slice accuracy the
    serving version's gate measured when it was promoted.
    """
    concerns: list[Concern] = []
    if figures is not None:
        concerns += _performance(model, figures, gate_claim)
    if result is not None:
        concerns += _drift(model, result)
    if quality is not None:
        concerns += _data_quality(quality)
    if retrain_reasons:
        text = "retrain-worthy: " + "; ".join(retrain_reasons)
        concerns.append(Concern(kind="policy", level=ACT, impact=0.0, text=text))
    n = figures.n_rows if figures is not None else (result.n_current if result is not None else 0)
    return Verdict.of(concerns, quiet=_quiet(n, figures))


def _quiet(n: int, figures: CheckFigures | None) -> str:
    realized = figures.realized_performance if figures is not None else None
    if realized is not None and realized.enough_labels and realized.accuracy is not None:
        accuracy = f"realized accuracy {realized.accuracy:.1%} on {realized.n_labelled:,} labels"
        return f"no concern in {n:,} predictions; {accuracy}"
    return f"no concern in {n:,} predictions"


def _performance(model: ModelSettings, figures: CheckFigures, gate_claim: float | None) -> list[Concern]:
    policy = model.retrain_when
    found: list[Concern] = []
    realized = figures.realized_performance
    if realized is not None and realized.enough_labels and realized.accuracy is not None:
        low, high = realized.accuracy_ci
        interval = (
            f" ({low:.1%}-{high:.1%}, {realized.n_labelled:,} labels)" if low is not None and high is not None else ""
        )
        reference = realized.reference_accuracy
        limit = policy.realized_accuracy_drop if policy.realized_accuracy_drop is not None else MUCH_WORSE / 2
        if reference is not None:
            drop = reference - realized.accuracy
            much = drop >= MUCH_WORSE and realized.n_labelled >= MUCH_WORSE_LABELS
            significant = high is not None and high < reference - limit
            if drop > limit or much or significant:
                found.append(
                    Concern(
                        kind="realized",
                        level=ACT if much or significant else WATCH,
                        impact=100 * drop,
                        text=f"realized accuracy {realized.accuracy:.1%}{interval}, "
                        f"{100 * drop:.1f} points below the reference ({reference:.1%})",
                    )
                )
        if gate_claim is not None and realized.n_labelled >= MUCH_WORSE_LABELS:
            gap = gate_claim - realized.accuracy
            if gap >= MUCH_WORSE:
                found.append(
                    Concern(
                        kind="realized",
                        level=WATCH,
                        impact=100 * gap,
                        text=f"realized accuracy {realized.accuracy:.1%}{interval}, "
                        f"{100 * gap:.1f} points below what the gate measured ({gate_claim:.1%})",
                    )
                )
        for label, recall in realized.per_class_recall.items():
            support = realized.per_class_support.get(label, 0)
            if recall is not None and recall < WEAK_RECALL and support >= MIN_LABELS:
                found.append(
                    Concern(
                        kind="realized",
                        level=WATCH,
                        impact=100 * (WEAK_RECALL - recall),
                        text=f"recall of {label!r} is {recall:.1%} ({support:,} labels)",
                    )
                )
    estimated = figures.estimated_performance
    estimate_limit = policy.estimated_accuracy_drop
    if estimated is not None and estimate_limit is not None:
        drop = estimated.reference_accuracy - estimated.accuracy
        if drop > estimate_limit:
            low, high = estimated.ci
            trust = "" if estimated.trustworthy else "; the labels disagree with it"
            found.append(
                Concern(
                    kind="estimate",
                    level=WATCH,
                    impact=100 * drop,
                    text=f"estimated accuracy {estimated.accuracy:.1%} ({low:.1%}-{high:.1%}), "
                    f"{100 * drop:.1f} points below the reference's {estimated.reference_accuracy:.1%}{trust}",
                )
            )
    wrong = figures.confidently_wrong
    if wrong is not None and wrong.rose_significantly and wrong.n_labelled >= MIN_LABELS and wrong.rate is not None:
        rise = wrong.rate - (wrong.reference_rate or 0.0)
        found.append(
            Concern(
                kind="confidently_wrong",
                level=ACT if rise >= MUCH_WORSE else WATCH,
                impact=100 * rise,
                text=f"confidently wrong {wrong.rate:.1%} of {wrong.n_confident:,} confident labelled predictions "
                f"(reference {wrong.reference_rate or 0.0:.1%})",
            )
        )
    outliers = figures.confident_outliers
    outlier_limit = policy.confident_outlier_rate_above
    if outliers is not None and outlier_limit is not None and outliers.rate > outlier_limit:
        found.append(
            Concern(
                kind="outliers",
                level=WATCH,
                impact=100 * outliers.rate,
                text=f"confident outliers: {outliers.rate:.1%} of predictions ({outliers.count:,}), "
                f"confident on inputs unlike the reference",
            )
        )
    masks = figures.segmentation
    iou_limit = policy.mean_iou_drop
    if (
        masks is not None
        and iou_limit is not None
        and masks.mean_iou is not None
        and masks.reference_mean_iou is not None
        and masks.n_scored >= MIN_LABELS
        and masks.reference_mean_iou - masks.mean_iou > iou_limit
    ):
        drop = masks.reference_mean_iou - masks.mean_iou
        found.append(
            Concern(
                kind="realized",
                level=ACT if drop >= 2 * iou_limit else WATCH,
                impact=100 * drop,
                text=f"mean IoU {masks.mean_iou:.2f} vs {masks.reference_mean_iou:.2f} on the reference "
                f"({masks.n_scored:,} masks)",
            )
        )
    return found


def _drift(model: ModelSettings, result: DriftResult) -> list[Concern]:
    found: list[Concern] = []
    outputs = [c for c in result.columns if c.kind == "output" and c.drifted]
    if result.outputs_drifted and outputs:
        strongest = max(outputs, key=lambda c: c.effect if c.effect == c.effect and c.effect is not None else 0.0)
        if len(model.class_labels) == 2:  # one probability carries it all: one finding
            what = f"outputs drifted ({strongest.column}, effect {_effect(strongest.effect)})"
        else:
            names = ", ".join(c.column for c in outputs[:4]) + ("..." if len(outputs) > 4 else "")
            what = f"outputs drifted ({names})"
        found.append(Concern(kind="drift", level=WATCH, impact=100 * _number(strongest.effect), text=what))
    if result.embedding_drifted:
        found.append(Concern(kind="drift", level=WATCH, impact=0.0, text="embeddings drifted"))
    features = sorted(
        (c for c in result.columns if c.kind == "feature" and c.drifted), key=lambda c: -_number(c.effect)
    )
    if features:
        total = sum(c.kind == "feature" for c in result.columns)
        names = ", ".join(c.column for c in features[:3]) + ("..." if len(features) > 3 else "")
        found.append(
            Concern(
                kind="drift",
                level=WATCH,
                impact=100 * _number(features[0].effect),
                text=f"{len(features)} of {total} features drifted ({names})",
            )
        )
    return found


def _data_quality(quality: WindowQuality) -> list[Concern]:
    if quality.blind is not None:
        return [Concern(kind="data_quality", level=ACT, impact=100.0, text=quality.blind.message)]
    share = quality.quarantine_share
    if share is not None and share >= QUARANTINE_WATCH:
        text = f"{share:.1%} of the window's rows were quarantined ({quality.quarantined:,})"
        if quality.main_reason:
            text += f", mostly {quality.main_reason}"
        return [Concern(kind="data_quality", level=WATCH, impact=100 * share, text=text)]
    return []


def _number(value: float | None) -> float:
    return value if value is not None and value == value else 0.0


def _effect(value: float | None) -> str:
    return f"{value:.2f}" if value is not None and value == value else "n/a"
