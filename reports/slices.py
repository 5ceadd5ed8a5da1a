"""Slices of a week (``summary.json`` ``slices``): per value of the categorical features, how
many predictions it got, how its share moved against the reference, and how well the model did
on it once labels arrived, ranked by its share of the week's errors.

A slice is one value of one feature; a feature's ``top_k`` most frequent values of the week
get a row each and the rest is folded into one ``other`` row (``other=True``, ``value="other"``,
``n_values`` the values folded). Missing values are a slice of their own (``value=None``).
Every labelled prediction lies in exactly one slice per feature, so a feature's ``error_share``
values add up to 1.

The records only: the figures are computed by :mod:`jobs.report.slices` with :mod:`drift`.
Like :mod:`reports.summary`, this module imports only ``drift``.
"""

from __future__ import annotations

import dataclasses

from drift.records import Record


class _Record(Record):
    record_name = "slices"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SliceRow(_Record):
    """One value of one categorical feature in the week.

    Attributes:
        feature, value: the slice (``value`` None: the feature is missing; ``"other"`` with
            ``other`` set: the values outside the feature's top K).
        n_values: distinct values in the slice (1, or how many were folded into ``other``).
        n, share: the week's predictions in the slice, and their share of the week's.
        reference_n, reference_share, share_shift: the same in the reference, and
            ``share - reference_share`` (None without a reference).
        n_labelled: labelled predictions in the slice.
        accuracy, accuracy_ci_low, accuracy_ci_high: realized accuracy and its 95% Wilson
            interval (None without labels).
        n_confident_labelled: labelled predictions with confidence >= the model's threshold.
        confidently_wrong: of those, how many are wrong; ``confidently_wrong_rate`` their share.
        errors: wrong labelled predictions in the slice.
        error_share: ``errors`` over the week's errors (None when the week has none).
    """

    feature: str
    value: str | None
    other: bool = False
    n_values: int = 1
    n: int
    share: float
    reference_n: int | None
    reference_share: float | None
    share_shift: float | None
    n_labelled: int
    accuracy: float | None
    accuracy_ci_low: float | None
    accuracy_ci_high: float | None
    n_confident_labelled: int
    confidently_wrong: int
    confidently_wrong_rate: float | None
    errors: int
    error_share: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class SliceFeatureDrift(_Record):
    """Whether a feature's slice shares moved: a two-sample chi-square test (``chisquare_2s`` of
    :mod:`drift.methods`) of the week's counts per slice against the reference's.

    ``adjusted_p_value`` is corrected over the sliced features (the model's ``drift.correction``);
    ``drifted`` when it is below ``threshold``.
    """

    feature: str
    method: str
    statistic: float
    p_value: float
    adjusted_p_value: float
    threshold: float
    drifted: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class Slices(_Record):
    """The week's slices of one model version.

    Attributes:
        version: the model version whose predictions were sliced (the week's main one).
        features: the sliced features, in config order.
        top_k: values shown per feature before the rest is folded into ``other``.
        confidence_threshold: the model's threshold for "confident".
        n, n_labelled, errors: the week's predictions, labelled ones and wrong ones.
        reference_n: the reference's rows (None without a reference).
        rows: every feature's slices, ranked by ``error_share`` (then ``n``), highest first.
        drift: one test per feature (empty without a reference).
    """

    version: int
    features: tuple[str, ...]
    top_k: int
    confidence_threshold: float
    n: int
    n_labelled: int
    errors: int
    reference_n: int | None
    rows: tuple[SliceRow, ...] = ()
    drift: tuple[SliceFeatureDrift, ...] = ()

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(d.feature for d in self.drift if d.drifted)

    def of(self, feature: str) -> tuple[SliceRow, ...]:
        """The slices of one feature, in rank order."""
        return tuple(r for r in self.rows if r.feature == feature)
