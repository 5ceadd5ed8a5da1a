"""The gate's held-out slice by period: which labelled samples it judges on, and how they count.

The recent window ``[start, end)`` is cut into periods of the check's window length, anchored at
the start of the drifted window (the first of the champion's unbroken retrain-worthy checks):
periods from there on are *drifted*, those before it are *older*. Every period gives the same
share of its labelled samples to the held-out slice (the samples with the smallest stable hash
of their prediction id), so each is represented in proportion. In the score, the drifted
periods together carry ``drifted_weight`` and the older ones the rest, each group split by
held-out sample; when one group is empty the other carries everything.

Pure numpy and pandas: no storage, no TensorFlow.

>>> from datetime import UTC, datetime
>>> days = [datetime(2026, 9, d, tzinfo=UTC) for d in (7, 14, 21, 28)]
>>> [(p.start.day, p.end.day, p.drifted) for p in split_periods(days[0], days[3], drift_start=days[2], days=7)]
[(7, 14, False), (14, 21, False), (21, 28, True)]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from drift.errors import ValidationError


@dataclass(frozen=True, kw_only=True)
class Period:
    start: datetime
    end: datetime
    drifted: bool  # in the drifted window (or after it)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "drifted": self.drifted}


def split_periods(start: datetime, end: datetime, *, drift_start: datetime | None, days: float) -> tuple[Period, ...]:
    """``[start, end)`` in periods of ``days``, oldest first, cut at ``drift_start`` (the end without one)."""
    if days <= 0:
        raise ValidationError(f"days must be > 0, got {days}")
    if end <= start:
        raise ValidationError(f"the recent window is empty: {start.isoformat()} .. {end.isoformat()}")
    step = timedelta(days=days)
    anchor = end if drift_start is None or drift_start >= end else max(drift_start, start)
    periods: list[Period] = []
    cut = anchor
    while cut > start:
        periods.insert(0, Period(start=max(cut - step, start), end=cut, drifted=False))
        cut -= step
    cut = anchor
    while cut < end:
        periods.append(Period(start=cut, end=min(cut + step, end), drifted=True))
        cut += step
    return tuple(periods)


def stable_keys(prediction_ids: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per prediction id, the same on every run."""
    return np.array(
        [int(hashlib.sha1(str(p).encode()).hexdigest()[:8], 16) % 10_000 / 10_000 for p in prediction_ids],
        dtype=float,
    )


def held_count(n: int, share: float) -> int:
    """How many of a period's ``n`` samples are held out: ``share`` of them, rounded, and at least one on
    each side once there are two."""
    if n < 2:
        return 0
    return min(max(int(np.floor(n * share + 0.5)), 1), n - 1)


@dataclass(frozen=True, kw_only=True)
class HoldoutSplit:
    """Per labelled sample: its period (an index into ``periods``; -1 outside them) and its side."""

    periods: tuple[Period, ...]
    period_of: np.ndarray
    held: np.ndarray

    @classmethod
    def stratified(
        cls, prediction_ids: np.ndarray, ts: pd.DatetimeIndex, periods: tuple[Period, ...], share: float
    ) -> HoldoutSplit:
        """``share`` of each period held out (a lone sample by its stable key)."""
        if not 0 < share < 1:
            raise ValidationError(f"share must be in (0, 1), got {share}")
        keys = stable_keys(prediction_ids)
        period_of = np.full(len(keys), -1, dtype=np.int64)
        stamps = pd.DatetimeIndex(ts)
        for i, p in enumerate(periods):
            period_of[(stamps >= pd.Timestamp(p.start)) & (stamps < pd.Timestamp(p.end))] = i
        held = np.zeros(len(keys), dtype=bool)
        for i in range(len(periods)):
            members = np.flatnonzero(period_of == i)
            if len(members) == 1:
                held[members] = keys[members] < share
                continue
            k = held_count(len(members), share)
            held[members[np.argsort(keys[members], kind="stable")[:k]]] = True
        return cls(periods=periods, period_of=period_of, held=held)

    @property
    def held_periods(self) -> np.ndarray:
        """The period index of each held-out sample, in sample order."""
        return np.asarray(self.period_of[self.held])

    def weights(self, drifted_weight: float) -> np.ndarray:
        """Per held-out sample, its weight in the score (they sum to 1)."""
        index = self.held_periods
        if len(index) == 0:
            return np.zeros(0)
        drifted = np.array([self.periods[i].drifted if i >= 0 else False for i in index], dtype=bool)
        n_drifted, n_older = int(drifted.sum()), int((~drifted).sum())
        if n_drifted == 0 or n_older == 0:
            return np.full(len(index), 1.0 / len(index))
        return np.where(drifted, drifted_weight / n_drifted, (1.0 - drifted_weight) / n_older)

    def n_drifted_held(self) -> int:
        return sum(1 for i in self.held_periods if i >= 0 and self.periods[i].drifted)


@dataclass(frozen=True, kw_only=True)
class PeriodScore:
    period: Period
    n_labelled: int
    n_holdout: int
    weight: float
    accuracy: float | None
    champion_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return self.period.to_dict() | {
            "n_labelled": self.n_labelled,
            "n_holdout": self.n_holdout,
            "weight": round(self.weight, 6),
            "accuracy": self.accuracy,
            "champion_accuracy": self.champion_accuracy,
        }


@dataclass(frozen=True, kw_only=True)
class HoldoutScore:
    """The challenger's and the champion's weighted figures on the held-out slice, and per period."""

    accuracy: float
    confidently_wrong_rate: float
    champion_accuracy: float
    champion_confidently_wrong_rate: float
    unweighted_accuracy: float
    champion_unweighted_accuracy: float
    drifted_weight: float
    periods: tuple[PeriodScore, ...]

    @property
    def n_holdout(self) -> int:
        return sum(p.n_holdout for p in self.periods)

    @property
    def n_holdout_drifted(self) -> int:
        return sum(p.n_holdout for p in self.periods if p.period.drifted)

    @property
    def weighting(self) -> str:
        """How the held-out samples counted, in words."""
        n, n_drifted = self.n_holdout, self.n_holdout_drifted
        if 0 < n_drifted < n:
            return f"drifted window weighted {self.drifted_weight:.0%}, {n_drifted} of {n} held-out samples"
        return f"{n} held-out samples, {'all' if n_drifted else 'none'} from the drifted window"

    def to_dict(self) -> dict[str, Any]:
        return {
            "recent_accuracy": self.accuracy,
            "recent_confidently_wrong_rate": self.confidently_wrong_rate,
            "champion_recent_accuracy": self.champion_accuracy,
            "champion_recent_confidently_wrong_rate": self.champion_confidently_wrong_rate,
            "recent_accuracy_unweighted": self.unweighted_accuracy,
            "champion_recent_accuracy_unweighted": self.champion_unweighted_accuracy,
            "drifted_weight": self.drifted_weight,
            "n_holdout": self.n_holdout,
            "n_holdout_drifted": self.n_holdout_drifted,
            "periods": [p.to_dict() for p in self.periods],
        }


def score(
    split: HoldoutSplit,
    *,
    correct: np.ndarray,
    confidently_wrong: np.ndarray,
    champion_correct: np.ndarray,
    champion_confidently_wrong: np.ndarray,
    drifted_weight: float,
) -> HoldoutScore:
    """Weighted accuracy and confidently-wrong rate of both models; the arrays are per held-out sample."""
    index = split.held_periods
    arrays = (correct, confidently_wrong, champion_correct, champion_confidently_wrong)
    if len(index) == 0 or any(len(a) != len(index) for a in arrays):
        raise ValidationError(f"score needs one value per held-out sample ({len(index)}), and at least one")
    w = split.weights(drifted_weight)

    def share(mask: np.ndarray) -> float | None:
        return float(np.mean(mask)) if len(mask) else None

    periods = []
    for i, p in enumerate(split.periods):
        mine = index == i
        periods.append(
            PeriodScore(
                period=p,
                n_labelled=int((split.period_of == i).sum()),
                n_holdout=int(mine.sum()),
                weight=float(w[mine].sum()),
                accuracy=share(correct[mine]),
                champion_accuracy=share(champion_correct[mine]),
            )
        )
    return HoldoutScore(
        accuracy=float(w @ correct.astype(float)),
        confidently_wrong_rate=float(w @ confidently_wrong.astype(float)),
        champion_accuracy=float(w @ champion_correct.astype(float)),
        champion_confidently_wrong_rate=float(w @ champion_confidently_wrong.astype(float)),
        unweighted_accuracy=float(np.mean(correct)),
        champion_unweighted_accuracy=float(np.mean(champion_correct)),
        drifted_weight=drifted_weight,
        periods=tuple(periods),
    )
