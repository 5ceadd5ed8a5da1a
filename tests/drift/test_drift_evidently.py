"""Agreement with evidently's DataDriftPreset on a small seeded matrix.

no / small / medium / large shift x numeric, categorical and class-probability columns x
a small (<= 1000 rows: KS / chi-square / Z) and a large (Wasserstein / Jensen-Shannon)
reference. Same method per column and same per-column verdict. The large matrix is in
``bench/bench_drift.py --agreement``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drift import DriftPolicy, DriftResult, DriftSpec, compare

SHIFTS = {"none": 0.0, "small": 0.05, "medium": 0.2, "large": 0.6}
PROBS = [f"prob_{i}" for i in range(5)]


def frame(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, len(PROBS)))
    logits[:, 0] += 2 * shift
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    w = min(shift, 1.0)
    out = pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, n),
            "lognormal": rng.lognormal(shift, 0.7, n),
            "uniform": rng.uniform(0, 1 + shift, n),
            "counts": rng.poisson(8 * (1 + shift), n).astype(float),
            "few_values": rng.choice([0.0, 0.5, 1.0, 2.0], n, p=[0.4 - 0.3 * w, 0.3, 0.2, 0.1 + 0.3 * w]),
            "binary": rng.choice(["yes", "no"], n, p=[0.5 + 0.4 * w, 0.5 - 0.4 * w]),
            "plan": rng.choice(["a", "b", "c", "d"], n, p=[0.4 - 0.3 * w, 0.3, 0.2, 0.1 + 0.3 * w]),
        }
    )
    return out.assign(**{name: p[:, i] for i, name in enumerate(PROBS)})


CASES = [(ref_n, shift) for ref_n in (600, 2500) for shift in SHIFTS]


@pytest.fixture(scope="module")
def results() -> dict[tuple[int, str], dict[str, DriftResult]]:
    out = {}
    for ref_n, shift in CASES:
        ref, cur = frame(ref_n, 0.0, seed=ref_n), frame(800, SHIFTS[shift], seed=ref_n + 1)
        spec = DriftSpec.infer(
            ref, outputs=PROBS, method_rule="evidently", correction="none", policy=DriftPolicy.evidently()
        )
        out[ref_n, shift] = {e: compare(ref, cur, spec, engine=e) for e in ("evidently", "fast", "profile")}
    return out


def test_methods_are_evidently_defaults(results: dict[tuple[int, str], dict[str, DriftResult]]) -> None:
    for (ref_n, _), by_engine in results.items():
        expected = [c.method for c in by_engine["evidently"].columns]
        assert [c.method for c in by_engine["fast"].columns] == expected
        assert [c.method for c in by_engine["profile"].columns] == expected
        assert set(expected) == ({"ks", "chisquare", "z"} if ref_n <= 1000 else {"wasserstein", "jensenshannon"})


@pytest.mark.parametrize("engine", ["fast", "profile"], ids=["fast", "profile"])
def test_same_column_verdicts_as_evidently(engine: str, results: dict[tuple[int, str], dict[str, DriftResult]]) -> None:
    same = total = 0
    for by_engine in results.values():
        for ours, theirs in zip(by_engine[engine].columns, by_engine["evidently"].columns, strict=True):
            same += ours.drifted == theirs.drifted
            total += 1
    assert total == len(CASES) * 12
    assert same / total >= 0.99


def test_fast_engine_reproduces_evidently_values(
    results: dict[tuple[int, str], dict[str, DriftResult]],
) -> None:
    for by_engine in results.values():
        for ours, theirs in zip(by_engine["fast"].columns, by_engine["evidently"].columns, strict=True):
            value = ours.p_value if ours.p_value is not None else ours.score
            assert value == pytest.approx(theirs.score, rel=1e-6, abs=1e-12), ours.column


def test_verdicts_span_both_outcomes(results: dict[tuple[int, str], dict[str, DriftResult]]) -> None:
    flags = [c.drifted for r in results.values() for c in r["evidently"].columns]
    assert 0.2 < np.mean(flags) < 0.8  # the matrix is not trivially all-drift or no-drift


def test_default_spec_runs_inside_evidently_with_the_same_verdicts() -> None:
    ref, cur = frame(600, 0.0, seed=5), frame(500, 0.2, seed=6)
    spec = DriftSpec.infer(ref, outputs=PROBS)  # p-value tests, BH, default policy
    ev, fast = compare(ref, cur, spec, engine="evidently"), compare(ref, cur, spec, engine="fast")
    assert [c.method for c in ev.columns] == [c.method for c in fast.columns]
    assert "chisquare_2s" in {c.method for c in ev.columns}  # registered into evidently on first use
    assert [c.p_value for c in ev.columns] == pytest.approx([c.p_value for c in fast.columns], rel=1e-6)
    assert [c.drifted for c in ev.columns] == [c.drifted for c in fast.columns]
    assert ev.drifted == fast.drifted
