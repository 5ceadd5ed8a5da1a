"""Corrections and the dataset verdict: false alarms and detection versus Failing Loudly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from drift import ColumnSpec, DriftPolicy, DriftSpec, adjust_p_values, compare
from drift.errors import InvalidSpecError, UnknownMethodError
from drift.verdict import decide

N_CLASSES = 10


def probabilities(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    """Softmax of 10 Gaussian logits; ``shift`` raises class 0's logit (a prior shift)."""
    logits = rng.normal(0.0, 1.5, (n, N_CLASSES))
    logits[:, 0] += shift
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return pd.DataFrame({f"p{i}": p[:, i] for i in range(N_CLASSES)})


def output_spec(method: str | None = None, **options: object) -> DriftSpec:
    cols = tuple(ColumnSpec(name=f"p{i}", type="numeric", role="output", method=method) for i in range(N_CLASSES))
    return DriftSpec(columns=cols, **options)  # type: ignore[arg-type]


DEFAULT = output_spec()
ANY_COLUMN = output_spec(correction="none", method_rule="evidently", policy=DriftPolicy.any_column())
FAILING_LOUDLY = output_spec("ks", correction="bonferroni", policy=DriftPolicy.any_column())


def test_bh_equals_scipy_false_discovery_control() -> None:
    p = np.random.default_rng(3).uniform(0, 0.2, 40) ** 2
    assert np.allclose(adjust_p_values(p, "bh"), stats.false_discovery_control(p))


def test_bonferroni_multiplies_and_caps() -> None:
    assert adjust_p_values([0.01, 0.3], "bonferroni").tolist() == [0.02, 0.6]
    assert adjust_p_values([0.7, 0.9], "bonferroni").tolist() == [1.0, 1.0]


def test_unknown_correction_lists_allowed_values() -> None:
    with pytest.raises(UnknownMethodError, match="allowed: bh, bonferroni, none"):
        adjust_p_values([0.1], "holm")


@pytest.mark.parametrize(
    ("policy", "features", "outputs", "embedding", "expected"),
    [
        (DriftPolicy(), [False, False], [False], False, False),
        (DriftPolicy(), [False, True], [False], False, True),
        (DriftPolicy(feature_share=0.5), [False, True], [False], None, False),
        (DriftPolicy(feature_share=0.5), [True, True], [False], None, True),
        (DriftPolicy(), [False], [True], None, True),
        (DriftPolicy(), [False], [False], True, True),
        (DriftPolicy.evidently(), [True, False, False], [True], None, True),
        (DriftPolicy.evidently(), [True, False, False], [False], True, False),
    ],
    ids=[
        "nothing",
        "any-feature",
        "half-features-not-exceeded",
        "all-features",
        "outputs",
        "embedding",
        "evidently-share-reached",
        "evidently-ignores-embedding",
    ],
)
def test_policy_rules(
    policy: DriftPolicy, features: list[bool], outputs: list[bool], embedding: bool | None, expected: bool
) -> None:
    assert decide(policy, features=features, outputs=outputs, embedding=embedding).drifted is expected


def test_policy_validates_and_describes_itself() -> None:
    with pytest.raises(InvalidSpecError, match=r"feature_share must be in \[0, 1\)"):
        DriftPolicy(feature_share=1.5)
    assert DriftPolicy().describe().startswith("default: drifted when any output column drifted or the embedding")
    assert DriftPolicy.from_dict(DriftPolicy.evidently().to_dict()) == DriftPolicy.evidently()


def alarm_rate(spec: DriftSpec, n: int, shift: float, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        hits += compare(probabilities(n, rng), probabilities(n, rng, shift), spec).drifted
    return hits / reps


@pytest.mark.parametrize("n", [10, 100, 1000], ids=["n10", "n100", "n1000"])
def test_default_policy_false_alarms_at_most_5_percent(n: int) -> None:
    reps = 150
    rate = alarm_rate(DEFAULT, n, 0.0, reps, seed=n)
    # 5% plus two binomial standard deviations of the Monte-Carlo estimate
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)


def test_any_column_rule_cries_wolf() -> None:
    assert alarm_rate(ANY_COLUMN, 100, 0.0, 100, seed=5) > 0.15


@pytest.mark.parametrize(("n", "shift"), [(30, 1.0), (300, 0.3)], ids=["n30-shift1", "n300-shift0.3"])
def test_default_policy_detects_whenever_failing_loudly_does(n: int, shift: float) -> None:
    rng = np.random.default_rng(7)
    ours = theirs = 0
    for _ in range(40):
        ref, cur = probabilities(n, rng), probabilities(n, rng, shift)
        fl, default = compare(ref, cur, FAILING_LOUDLY).drifted, compare(ref, cur, DEFAULT).drifted
        assert default or not fl  # every Failing-Loudly detection is ours too
        ours, theirs = ours + default, theirs + fl
    assert ours >= theirs > 0


def test_undefined_p_values_count_as_one() -> None:
    assert adjust_p_values([0.001, float("nan"), 0.02], "bh").tolist() == pytest.approx([0.003, 1.0, 0.03])
