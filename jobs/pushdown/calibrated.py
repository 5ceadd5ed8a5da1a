"""The accuracy estimate's :class:`~drift.estimate.CalibratedSums` from bounded groups of rows.

A calibrator (:class:`~drift.calibration.ConfidenceCalibrator`, or one per predicted label in
a :class:`~drift.class_calibration.ClassCalibrator`) is piecewise linear in the confidence
between its knots: isotonic interpolates linearly between them and is constant outside,
histogram binning is constant between them. A row's confidence is placed on the sorted knots
(``n`` of them) of the calibrator its predicted label is calibrated by (a label without one of
its own: the global calibrator's), and its cell numbered as the profile numbers cells: twice
the knots below it, plus one when it lies on a knot, so a knot is a cell of its own (the
histogram's jumps happen there). The calibrator is then ``p(x) = p0 + b (x - ref)`` on a cell,
with ``ref`` the cell's middle (its knot, for a knot's cell, where ``b = 0``). Taking each
label's own knots rather than the union of all the calibrators' keeps the cells of a label
as few as its calibrator's knots.

The database groups rows by (segment, predicted label, cell, far flag) and returns per group
the count, ``S = sum(x)``, ``T1 = sum(x - ref)`` and ``T2 = sum((x - ref)^2)``: at most
``segments x sum over labels of (2 n_label + 1) x 2`` rows, whatever the table's size. Then,
per group,

* ``sum p = p0 n + b T1``;
* ``sum p (1 - p) = (p0 - p0^2) n + b (1 - 2 p0) T1 - b^2 T2``;

``p0`` and ``b`` are had by evaluating the calibrator itself (at ``ref`` and at two more points
inside the cell), so they hold for any piecewise-linear calibrator with these knots. Centring
on ``ref`` keeps ``b (x - ref)`` within the calibrator's rise over the cell, so a steep piece
(two knots a millionth apart) costs no precision: the sums equal the row-wise ones up to the
rounding of their addition (~1e-13 relative).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.calibration import ConfidenceCalibrator
from drift.class_calibration import Calibrator, ClassCalibrator
from drift.estimate import CalibratedSums


@dataclass(frozen=True, kw_only=True)
class Cells:
    """The cells of a calibrator's knots: ``2 * len(knots) + 1`` of them."""

    knots: np.ndarray  # sorted, distinct
    ref: np.ndarray  # per cell: its middle (its knot, for a knot's cell)
    low: np.ndarray  # per cell: two points inside it (equal to ref for a knot's cell)
    high: np.ndarray

    @classmethod
    def of(cls, calibrator: ConfidenceCalibrator) -> Cells:
        knots = np.unique(np.asarray(calibrator.knots_x_, dtype=np.float64))
        n = knots.size
        lo = np.concatenate([[min(0.0, knots[0])], knots])  # open cell i lies between lo[i] and hi[i]
        hi = np.concatenate([knots, [max(1.0, knots[-1])]])
        width = hi - lo
        ref = np.empty(2 * n + 1)
        low, high = np.empty(2 * n + 1), np.empty(2 * n + 1)
        # two points strictly inside each open cell, however narrow (none inside: slope 0)
        inner_lo = np.maximum(lo + width / 4, np.nextafter(lo, np.inf))
        inner_hi = np.minimum(hi - width / 4, np.nextafter(hi, -np.inf))
        empty = inner_lo > inner_hi
        ref[0::2] = lo + width / 2
        low[0::2], high[0::2] = np.where(empty, ref[0::2], inner_lo), np.where(empty, ref[0::2], inner_hi)
        ref[1::2] = low[1::2] = high[1::2] = knots
        return cls(knots=knots, ref=ref, low=low, high=high)

    @property
    def n_cells(self) -> int:
        return self.ref.size

    def pieces(self, calibrator: ConfidenceCalibrator) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, ``p0`` (the value at ``ref``) and the slope ``b`` of the calibrator."""
        inside = np.clip(self.ref, 0.0, 1.0)
        p0 = calibrator.predict(inside)
        a, b = calibrator.predict(np.clip(self.low, 0.0, 1.0)), calibrator.predict(np.clip(self.high, 0.0, 1.0))
        run = self.high - self.low
        slope = np.divide(b - a, run, out=np.zeros_like(run), where=run > 0)
        return p0, slope


@dataclass(frozen=True, kw_only=True)
class CellPlan:
    """Which calibrator, and so which knots, each predicted label's rows are placed on.

    ``parts[0]`` is the default (the only calibrator, or a class calibrator's global one);
    ``parts[i]`` for ``i >= 1`` is the own calibrator of ``labels[i - 1]``.
    """

    labels: tuple[str, ...]
    parts: tuple[tuple[ConfidenceCalibrator, Cells], ...]

    @classmethod
    def of(cls, calibrator: Calibrator) -> CellPlan:
        if isinstance(calibrator, ClassCalibrator):
            own = sorted(calibrator.by_label_.items())
            cals = [calibrator.global_, *(c for _, c in own)]
            return cls(labels=tuple(label for label, _ in own), parts=tuple((c, Cells.of(c)) for c in cals))
        return cls(labels=(), parts=((calibrator, Cells.of(calibrator)),))

    def part(self, label: str) -> int:
        """The index in ``parts`` of the calibrator of rows predicted ``label``."""
        return self.labels.index(label) + 1 if label in self.labels else 0

    def n_cells(self, labels: Sequence[str]) -> int:
        """Cells of all these predicted labels together (what bounds a segment's groups)."""
        return sum(self.parts[self.part(str(label))][1].n_cells for label in labels)

    def params(self) -> dict[str, Any]:
        """The query's parameters: each part's knots (and negated, reversed), cells' references, labels."""
        out: dict[str, Any] = {}
        for k, (_, cells) in enumerate(self.parts):
            out[f"edges_cal{k}"] = cells.knots.tolist()
            out[f"neg_edges_cal{k}"] = (-cells.knots[::-1]).tolist()
            out[f"cal_ref{k}"] = cells.ref.tolist()
        out |= {f"cal_label{k + 1}": label for k, label in enumerate(self.labels)}
        return out


@dataclass(frozen=True, kw_only=True)
class Group:
    """One result row of the grouped calibration query."""

    label: str
    cell: int
    far: bool
    n: int
    sum_x: float  # sum of the confidences
    sum_t: float  # sum of (confidence - ref)
    sum_tt: float  # sum of (confidence - ref)^2


def calibrated_sums(plan: CellPlan, groups: Iterable[Group], *, far_known: bool) -> CalibratedSums:
    """One segment's sums from its groups (``far_known``: the far flag was computed)."""
    pieces: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    n = n_far = 0
    sum_p = sum_pq = sum_x = sum_p_far = 0.0
    for g in groups:
        k = plan.part(g.label)
        if k not in pieces:
            calibrator, cells = plan.parts[k]
            pieces[k] = cells.pieces(calibrator)
        p0, b = float(pieces[k][0][g.cell]), float(pieces[k][1][g.cell])
        part_p = p0 * g.n + b * g.sum_t
        part_pq = (p0 - p0 * p0) * g.n + b * (1.0 - 2.0 * p0) * g.sum_t - b * b * g.sum_tt
        n += g.n
        sum_p += part_p
        sum_pq += part_pq
        sum_x += g.sum_x
        if g.far:
            n_far += g.n
            sum_p_far += part_p
    return CalibratedSums(
        n=n,
        sum_p=sum_p,
        sum_pq=sum_pq,
        sum_confidence=sum_x,
        n_far=n_far if far_known else None,
        sum_p_far=sum_p_far if far_known else None,
    )


def groups_of(rows: Sequence[Sequence[Any]]) -> dict[int, list[Group]]:
    """The query's rows ``(seg, pred, cell, far, count, S, T1, T2)`` per segment."""
    out: dict[int, list[Group]] = {}
    for seg, pred, cell, far, n, s, t1, t2 in rows:
        group = Group(
            label=str(pred), cell=int(cell), far=bool(far), n=int(n), sum_x=float(s), sum_t=float(t1), sum_tt=float(t2)
        )
        out.setdefault(int(seg), []).append(group)
    return out
