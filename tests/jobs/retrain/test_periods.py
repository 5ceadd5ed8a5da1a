"""The gate's held-out slice by period: stratification, weights, per-period scores (no TensorFlow)."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import jobs.retrain.periods as periods_module
from drift.errors import ValidationError
from jobs.config import RetrainSettings
from jobs.retrain.gate import recent_failures
from jobs.retrain.periods import HoldoutSplit, Period, held_count, score, split_periods

START = datetime(2026, 9, 7, tzinfo=UTC)
DAY = timedelta(days=1)


def _samples(counts: dict[int, int], seed: int = 0) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """``counts[week]`` samples spread over week ``week`` (0-based from START), ids ``w<week>-<i>``."""
    rng = np.random.default_rng(seed)
    ids, stamps = [], []
    for week, n in counts.items():
        ids += [f"w{week}-{i}" for i in range(n)]
        stamps += list(START + week * 7 * DAY + timedelta(seconds=float(s)) for s in rng.uniform(0, 7 * 86400, n))
    return np.array(ids, dtype=object), pd.DatetimeIndex(stamps)


def test_the_docstring_example_runs():
    result = doctest.testmod(periods_module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("drift_start", "expected"),
    [
        pytest.param(
            START + 14 * DAY,
            [(0, 7, False), (7, 14, False), (14, 21, True), (21, 24, True)],
            id="older-weeks-then-drifted-weeks",
        ),
        pytest.param(
            None, [(0, 3, False), (3, 10, False), (10, 17, False), (17, 24, False)], id="no-drift-back-from-end"
        ),
        pytest.param(START - 5 * DAY, [(0, 7, True), (7, 14, True), (14, 21, True), (21, 24, True)], id="all-drifted"),
        pytest.param(START + 30 * DAY, [(0, 3, False), (3, 10, False), (10, 17, False), (17, 24, False)], id="future"),
    ],
)
def test_periods_are_cut_at_the_drift_start(drift_start, expected):
    cut = split_periods(START, START + 24 * DAY, drift_start=drift_start, days=7)
    assert [((p.start - START).days, (p.end - START).days, p.drifted) for p in cut] == expected


def test_split_periods_rejects_an_empty_window_and_a_zero_length():
    with pytest.raises(ValidationError, match="empty"):
        split_periods(START, START, drift_start=None, days=7)
    with pytest.raises(ValidationError, match="days must be > 0"):
        split_periods(START, START + DAY, drift_start=None, days=0)


@pytest.mark.parametrize(("n", "expected"), [(0, 0), (1, 0), (2, 1), (3, 1), (10, 3), (15, 5), (100, 30), (200, 60)])
def test_held_count_is_the_share_rounded_and_keeps_both_sides(n, expected):
    assert held_count(n, 0.3) == expected


def test_each_period_is_represented_in_proportion_and_the_split_is_stable():
    ids, ts = _samples({0: 200, 1: 100, 2: 20})
    cut = split_periods(START, START + 21 * DAY, drift_start=START + 14 * DAY, days=7)
    split = HoldoutSplit.stratified(ids, ts, cut, 0.3)
    held_per_period = np.bincount(split.held_periods, minlength=3).tolist()
    assert held_per_period == [60, 30, 6]  # 30% of each week, the small drifted week too
    order = np.random.default_rng(1).permutation(len(ids))  # another read order: the same samples held out
    again = HoldoutSplit.stratified(ids[order], ts[order], cut, 0.3)
    assert set(ids[order][again.held]) == set(ids[split.held])


def test_the_drifted_periods_carry_the_configured_weight():
    ids, ts = _samples({0: 100, 1: 100, 2: 20})
    cut = split_periods(START, START + 21 * DAY, drift_start=START + 14 * DAY, days=7)
    split = HoldoutSplit.stratified(ids, ts, cut, 0.3)
    w = split.weights(0.8)
    drifted = split.held_periods == 2
    assert drifted.sum() == 6 and w.sum() == pytest.approx(1.0)
    assert w[drifted] == pytest.approx(np.full(6, 0.8 / 6)) and w[~drifted] == pytest.approx(np.full(60, 0.2 / 60))
    no_drift = HoldoutSplit.stratified(ids, ts, split_periods(START, START + 21 * DAY, drift_start=None, days=7), 0.3)
    assert no_drift.weights(0.8) == pytest.approx(np.full(66, 1 / 66))  # nothing drifted: every sample alike


def _only_better_on_old_data() -> tuple[HoldoutSplit, dict[str, np.ndarray]]:
    """Held out: 60 older samples (challenger 57 right, champion 45) and 10 drifted ones (challenger
    5 right, champion 7)."""
    ids, ts = _samples({0: 100, 1: 100, 2: 34})
    cut = split_periods(START, START + 21 * DAY, drift_start=START + 14 * DAY, days=7)
    split = HoldoutSplit.stratified(ids, ts, cut, 0.3)
    period = split.held_periods
    assert np.bincount(period).tolist() == [30, 30, 10]
    rank = np.empty(len(period), dtype=int)
    for p in range(3):
        rank[period == p] = np.arange((period == p).sum())
    older = period < 2
    correct = np.where(older, rank < np.where(period == 0, 29, 28), rank < 5)
    champion = np.where(older, rank < np.where(period == 0, 23, 22), rank < 7)
    none = np.zeros(len(period), dtype=bool)
    return split, {
        "correct": correct,
        "confidently_wrong": none,
        "champion_correct": champion,
        "champion_confidently_wrong": none,
    }


def test_per_period_accuracy_and_the_weighted_score_have_known_values():
    split, arrays = _only_better_on_old_data()
    scores = score(split, drifted_weight=0.8, **arrays)
    assert [(p.n_labelled, p.n_holdout, p.accuracy, p.champion_accuracy) for p in scores.periods] == [
        (100, 30, 29 / 30, 23 / 30),
        (100, 30, 28 / 30, 22 / 30),
        (34, 10, 0.5, 0.7),
    ]
    assert [p.weight for p in scores.periods] == pytest.approx([0.1, 0.1, 0.8])
    assert scores.accuracy == pytest.approx(0.2 * 57 / 60 + 0.8 * 0.5)
    assert scores.champion_accuracy == pytest.approx(0.2 * 45 / 60 + 0.8 * 0.7)
    assert scores.unweighted_accuracy == pytest.approx(62 / 70)
    record = scores.to_dict()
    assert record["recent_accuracy"] == scores.accuracy and record["n_holdout_drifted"] == 10
    assert [p["accuracy"] for p in record["periods"]] == [29 / 30, 28 / 30, 0.5]
    assert record["periods"][2] | {"accuracy": None} == {
        **Period(start=START + 14 * DAY, end=START + 21 * DAY, drifted=True).to_dict(),
        "n_labelled": 34,
        "n_holdout": 10,
        "weight": 0.8,
        "accuracy": None,
        "champion_accuracy": 0.7,
    }


@pytest.mark.parametrize(
    ("drifted_weight", "promotes"),
    [
        pytest.param(0.8, False, id="weighted-to-the-drift-rejects"),
        pytest.param(0.0, True, id="old-data-only-promotes"),
    ],
)
def test_a_challenger_only_better_on_old_data_fails_the_weighted_gate(drifted_weight, promotes):
    split, arrays = _only_better_on_old_data()
    policy = RetrainSettings(drifted_weight=drifted_weight)
    scores = score(split, drifted_weight=policy.drifted_weight, **arrays)
    # unweighted, the challenger wins by 62/70 - 52/70 = +14.3 points
    assert scores.unweighted_accuracy - scores.champion_unweighted_accuracy == pytest.approx(10 / 70)
    failures = recent_failures(policy, scores, test_accuracy=0.95, champion_test_accuracy=0.95)
    assert (not failures) is promotes
    if not promotes:
        assert failures == [
            "recent accuracy 59.0% vs champion 71.0% (drifted window weighted 80%, 10 of 70 held-out samples): "
            "gain -12.0% < 2.0%"
        ]


def test_score_needs_one_value_per_held_out_sample():
    split, arrays = _only_better_on_old_data()
    with pytest.raises(ValidationError, match="one value per held-out sample"):
        score(split, drifted_weight=0.8, **(arrays | {"correct": arrays["correct"][:-1]}))
