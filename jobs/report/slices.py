"""The week's slices (:class:`reports.slices.Slices`): per value of the categorical features, its
share of the week's predictions against the reference's, its realized accuracy, its
confidently-wrong rate and its share of the week's errors.

One pass over the week's rows of one version (with their labels), chunk by chunk: per feature
and value only five counts are kept (:class:`ValueCounts`), so memory grows with the number of
distinct values, not of rows. The reference's counts come from its stored profile. The
statistics are :mod:`drift`'s: Wilson intervals, and the two-sample chi-square test
(``chisquare_2s``) of the slice counts, corrected over the features with the model's
``drift.correction``.

Segmentation models are sliced by share and drift only: their labels are masks, so the
label figures stay empty (``n_labelled`` 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from drift import ReferenceProfile
from drift.binned import CategoryCounts, ColumnData
from drift.errors import ReferenceSetNotFound
from drift.intervals import wilson_interval
from drift.methods import ChiSquare2s, Score
from drift.profile import CategoryStats
from drift.verdict import adjust_p_values
from jobs.check.frames import layout
from jobs.check.reference import load_reference
from jobs.config import ModelSettings
from reports.slices import SliceFeatureDrift, SliceRow, Slices
from storage.models import Model
from storage.windows import LoggedRows, iter_rows

Key = str | None
"""A feature's value as text; None where it is missing."""

OTHER = "other"


@dataclass(frozen=True, kw_only=True)
class ValueCounts:
    """What one slice needs: predictions, labelled ones, wrong ones, confident labelled ones and
    confidently wrong ones. Counts add up (``a + b``): chunks and values merge exactly."""

    n: int = 0
    n_labelled: int = 0
    errors: int = 0
    n_confident: int = 0
    confidently_wrong: int = 0

    def __add__(self, other: ValueCounts) -> ValueCounts:
        return ValueCounts(
            n=self.n + other.n,
            n_labelled=self.n_labelled + other.n_labelled,
            errors=self.errors + other.errors,
            n_confident=self.n_confident + other.n_confident,
            confidently_wrong=self.confidently_wrong + other.confidently_wrong,
        )


Tally = dict[str, dict[Key, ValueCounts]]
"""Per feature, the counts of each value."""


def sliced_features(model: ModelSettings) -> tuple[str, ...]:
    """The features the report slices by: ``drift.slices``, or every categorical feature."""
    return model.drift.slices if model.drift.slices is not None else model.categorical_features


def week_slices(
    session: Session, model: ModelSettings, model_row: Model, version: int, start: datetime, end: datetime
) -> Slices | None:
    """The slices of ``version``'s predictions with ``start <= ts < end``; None when the model
    has no categorical feature to slice by (or ``drift.slices`` is empty)."""
    features = sliced_features(model)
    if not features:
        return None
    use_labels = model.task != "segmentation"
    tally: Tally = {feature: {} for feature in features}
    chunks = iter_rows(
        session,
        model_row.id,
        layout(model),
        version=version,
        start=start,
        end=end,
        with_labels=use_labels,
        with_uris=False,
    )
    for rows in chunks:
        count_chunk(tally, rows, model.confidence_threshold)
    try:
        reference: ReferenceProfile | None = load_reference(session, model_row, version)[0]
    except ReferenceSetNotFound:
        reference = None
    return build_slices(
        tally,
        ReferenceCounts.of(reference, features) if reference is not None else None,
        version=version,
        top_k=model.drift.slice_top_k,
        confidence_threshold=model.confidence_threshold,
        correction=model.drift.correction,
    )


def count_chunk(tally: Tally, rows: LoggedRows, threshold: float) -> None:
    """Add one chunk's rows to ``tally`` (in place), for each of its features."""
    n = len(rows)
    if n == 0:
        return
    if rows.label is not None:
        labelled = np.asarray(pd.notna(rows.label), dtype=bool)
        wrong = labelled & (rows.label != rows.predicted_label)
    else:
        labelled = wrong = np.zeros(n, dtype=bool)
    confident = labelled & (rows.confidence >= threshold)
    metrics = np.vstack([np.ones(n), labelled, wrong, confident, confident & wrong]).astype(np.float64)
    for feature, counts in tally.items():
        values = rows.categorical[feature] if feature in rows.categorical.columns else pd.Series([None] * n)
        codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
        codes = np.where(codes < 0, len(uniques), codes)  # missing: the last code
        sums = np.stack([np.bincount(codes, weights=m, minlength=len(uniques) + 1) for m in metrics], axis=1)
        keys: list[Key] = [str(u) for u in uniques] + [None]
        for key, row in zip(keys, sums.astype(np.int64).tolist(), strict=True):
            if row[0]:
                add = ValueCounts(
                    n=row[0], n_labelled=row[1], errors=row[2], n_confident=row[3], confidently_wrong=row[4]
                )
                counts[key] = counts.get(key, ValueCounts()) + add


@dataclass(frozen=True, kw_only=True)
class ReferenceCounts:
    """The reference's rows and, per feature, its count of each value (missing under None)."""

    n_rows: int
    features: Mapping[str, Mapping[Key, int]]

    @classmethod
    def of(cls, reference: ReferenceProfile, features: Iterable[str]) -> ReferenceCounts:
        """From a stored profile; features it did not profile as categorical are left out."""
        out: dict[str, dict[Key, int]] = {}
        for feature in features:
            stats = reference.stats.columns.get(feature)
            if not isinstance(stats, CategoryStats):
                continue
            counts: dict[Key, int] = {}
            for value, count in stats.counts.items():
                counts[str(value)] = counts.get(str(value), 0) + int(count)
            if stats.n_missing:
                counts[None] = stats.n_missing
            out[feature] = counts
        return cls(n_rows=reference.n_rows, features=out)


@dataclass(frozen=True, kw_only=True)
class _Folded:
    """One shown slice of a feature: a value, or the values outside the top K (``other``)."""

    key: Key
    other: bool = False
    n_values: int = 1
    counts: ValueCounts
    reference: int


def build_slices(
    tally: Tally,
    reference: ReferenceCounts | None,
    *,
    version: int,
    top_k: int,
    confidence_threshold: float,
    correction: str,
) -> Slices:
    """The slices from the week's counts and the reference's (None: no reference)."""
    features = tuple(tally)
    ref = reference.features if reference is not None else {}
    folded = {feature: _fold(tally[feature], ref.get(feature), top_k) for feature in features}
    week = _total(tally[features[0]].values()) if features else ValueCounts()
    rows = [_row(feature, f, week, _total_of(ref.get(feature))) for feature in features for f in folded[feature]]
    order = {feature: i for i, feature in enumerate(features)}
    rows.sort(key=lambda r: (-(r.error_share or 0.0), -r.n, order[r.feature], r.other, r.value is None, r.value or ""))
    tested = [feature for feature in features if feature in ref]
    return Slices(
        version=version,
        features=features,
        top_k=top_k,
        confidence_threshold=confidence_threshold,
        n=week.n,
        n_labelled=week.n_labelled,
        errors=week.errors,
        reference_n=reference.n_rows if reference is not None else None,
        rows=tuple(rows),
        drift=_drift(tested, folded, correction),
    )


def _total(counts: Iterable[ValueCounts]) -> ValueCounts:
    return sum(counts, ValueCounts())


def _total_of(counts: Mapping[Key, int] | None) -> int | None:
    return sum(counts.values()) if counts is not None else None


def _fold(week: Mapping[Key, ValueCounts], reference: Mapping[Key, int] | None, top_k: int) -> list[_Folded]:
    """The ``top_k`` most frequent values of the week (ties by value), then the rest as one
    ``other`` slice (values only the reference has included)."""
    ref = reference or {}
    top = sorted(week, key=lambda k: (-week[k].n, k is None, k or ""))[:top_k]
    rest = (set(week) | set(ref)) - set(top)
    folded = [_Folded(key=k, counts=week[k], reference=ref.get(k, 0)) for k in top]
    if rest:
        folded.append(
            _Folded(
                key=OTHER,
                other=True,
                n_values=len(rest),
                counts=_total(week[k] for k in rest if k in week),
                reference=sum(ref.get(k, 0) for k in rest),
            )
        )
    return folded


def _row(feature: str, f: _Folded, week: ValueCounts, reference_n: int | None) -> SliceRow:
    c = f.counts
    share = c.n / week.n if week.n else 0.0
    reference_share = f.reference / reference_n if reference_n else None
    low, high = wilson_interval(c.n_labelled - c.errors, c.n_labelled) if c.n_labelled else (None, None)
    return SliceRow(
        feature=feature,
        value=f.key,
        other=f.other,
        n_values=f.n_values,
        n=c.n,
        share=share,
        reference_n=f.reference if reference_n is not None else None,
        reference_share=reference_share,
        share_shift=share - reference_share if reference_share is not None else None,
        n_labelled=c.n_labelled,
        accuracy=(c.n_labelled - c.errors) / c.n_labelled if c.n_labelled else None,
        accuracy_ci_low=low,
        accuracy_ci_high=high,
        n_confident_labelled=c.n_confident,
        confidently_wrong=c.confidently_wrong,
        confidently_wrong_rate=c.confidently_wrong / c.n_confident if c.n_confident else None,
        errors=c.errors,
        error_share=c.errors / week.errors if week.errors else None,
    )


def _drift(features: list[str], folded: Mapping[str, list[_Folded]], correction: str) -> tuple[SliceFeatureDrift, ...]:
    """Per feature, the chi-square test of the week's slice counts against the reference's."""
    method = ChiSquare2s()
    scores = []
    for feature in features:
        slices = folded[feature]
        counts = CategoryCounts(
            keys=tuple(f.key for f in slices),
            ref_counts=np.array([f.reference for f in slices], dtype=np.int64),
            cur_counts=np.array([f.counts.n for f in slices], dtype=np.int64),
        )
        if counts.n_ref and counts.n_cur:
            scores.append(method.score(ColumnData(name=feature, type="categorical", categorical=counts)))
        else:  # one side is empty: nothing to compare
            scores.append(Score(score=0.0, p_value=1.0, effect=0.0))
    adjusted = adjust_p_values([s.p_value if s.p_value is not None else float("nan") for s in scores], correction)
    threshold = ChiSquare2s.default_threshold
    return tuple(
        SliceFeatureDrift(
            feature=feature,
            method=ChiSquare2s.key,
            statistic=s.score,
            p_value=s.p_value if s.p_value is not None else 1.0,
            adjusted_p_value=float(p),
            threshold=threshold,
            drifted=ChiSquare2s.is_drift(float(p), threshold),
        )
        for feature, s, p in zip(features, scores, adjusted, strict=True)
    )
