"""Calibrated sums from groups of rows per cell of the knots equal the row-wise sums."""

from __future__ import annotations

import numpy as np
import pytest

from drift.calibration import ConfidenceCalibrator
from drift.class_calibration import Calibrator, ClassCalibrator
from drift.estimate import CalibratedSums
from jobs.pushdown.calibrated import CellPlan, Group, calibrated_sums
from tests.jobs.lake.agree import SUM_RTOL


def calibrator(method: str, knots_x: list[float], knots_y: list[float]) -> ConfidenceCalibrator:
    return ConfidenceCalibrator.from_dict(
        {
            "method": method,
            "n_bins": max(2, len(knots_x)),
            "knots_x": knots_x,
            "knots_y": knots_y,
            "n_reference": 1000,
            "reference_accuracy": 0.8,
        }
    )


def grouped(plan: CellPlan, conf: np.ndarray, labels: np.ndarray, far: np.ndarray) -> list[Group]:
    """What the SQL grouping returns, computed in numpy: cells on each label's own knots."""
    cell = np.empty(conf.size, dtype=np.int64)
    t = np.empty(conf.size)
    for label in np.unique(labels):
        rows = labels == label
        cells = plan.parts[plan.part(str(label))][1]
        x = conf[rows]
        cell[rows] = (cells.knots[None, :] < x[:, None]).sum(axis=1) + (cells.knots[None, :] <= x[:, None]).sum(axis=1)
        t[rows] = x - cells.ref[cell[rows]]
    out = []
    for key in sorted(set(zip(labels.tolist(), cell.tolist(), far.tolist(), strict=True))):
        rows = (labels == key[0]) & (cell == key[1]) & (far == key[2])
        out.append(
            Group(
                label=key[0],
                cell=key[1],
                far=key[2],
                n=int(rows.sum()),
                sum_x=float(conf[rows].sum()),
                sum_t=float(t[rows].sum()),
                sum_tt=float((t[rows] ** 2).sum()),
            )
        )
    return out


def confidences(knots: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Uniform confidences, a fifth of them exactly on a knot, some next to one."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.0, 1.0, n)
    conf[: n // 5] = rng.choice(knots, n // 5)
    conf[n // 5 : n // 4] = np.nextafter(rng.choice(knots, n // 4 - n // 5), 1.0)
    return np.clip(conf, 0.0, 1.0)


STEEP_X = [0.2, 0.5, 0.5 + 1e-7, 0.5 + 3e-7, 0.93]  # a rise of 0.6 over a ten-millionth
STEEP_Y = [0.1, 0.2, 0.8, 0.85, 0.97]


@pytest.mark.parametrize("method", ["isotonic", "histogram"])
def test_sums_of_groups_equal_the_row_sums(method: str) -> None:
    cal = calibrator(method, STEEP_X, STEEP_Y)
    plan = CellPlan.of(cal)
    cells = plan.parts[0][1]
    assert cells.n_cells == 2 * len(STEEP_X) + 1 and plan.n_cells(["a", "b"]) == 2 * cells.n_cells
    conf = confidences(cells.knots, 20_000, seed=1)
    conf[:50] = np.linspace(0.5, 0.5 + 1e-7, 50)  # inside the steep piece
    labels = np.full(conf.size, "a", dtype=object)
    far = np.random.default_rng(2).random(conf.size) < 0.1
    want = CalibratedSums.of(cal, conf, labels, far)
    got = calibrated_sums(plan, grouped(plan, conf, labels, far), far_known=True)
    assert (got.n, got.n_far) == (want.n, want.n_far)
    np.testing.assert_allclose(
        [got.sum_p, got.sum_pq, got.sum_confidence, np.nan if got.sum_p_far is None else got.sum_p_far],
        [want.sum_p, want.sum_pq, want.sum_confidence, np.nan if want.sum_p_far is None else want.sum_p_far],
        rtol=SUM_RTOL,
    )


def test_per_label_calibrators_place_rows_on_their_own_knots() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.3, 1.0, 6000).round(3)
    labels = rng.choice(np.array(["cat", "dog", "rare"], dtype=object), conf.size, p=[0.5, 0.48, 0.02])
    correct = rng.random(conf.size) < np.where(labels == "cat", conf, conf**2)
    cal: Calibrator = ClassCalibrator(500).fit(conf, correct, labels)
    assert isinstance(cal, ClassCalibrator) and sorted(cal.by_label_) == ["cat", "dog"]
    plan = CellPlan.of(cal)
    assert plan.labels == ("cat", "dog") and plan.part("rare") == 0 and plan.part("dog") == 2
    assert plan.parts[2][1].knots.tolist() == np.unique(cal.by_label_["dog"].knots_x_).tolist()
    far = np.zeros(conf.size, dtype=bool)
    want = CalibratedSums.of(cal, conf, labels, far)
    got = calibrated_sums(plan, grouped(plan, conf, labels, far), far_known=False)
    assert (got.n, got.n_far, got.sum_p_far) == (want.n, None, None)
    np.testing.assert_allclose([got.sum_p, got.sum_pq], [want.sum_p, want.sum_pq], rtol=SUM_RTOL)
    # the same rows calibrated by the global calibrator alone give other sums: the labels matter
    assert not np.isclose(CalibratedSums.of(cal.global_, conf).sum_p, want.sum_p, rtol=1e-6)
