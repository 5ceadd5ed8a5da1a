"""compare(): engines, identical vs shifted data, errors, JSON output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from drift import DriftSpec, Engine, compare
from drift.errors import InvalidSpecError, UnknownMethodError

EMB = [f"e{i}" for i in range(8)]


def frame(n: int, seed: int, shift: float = 0.0, emb_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, n),
            "income": rng.lognormal(10 + shift, 0.5, n),
            "plan": rng.choice(
                ["free", "pro", "team"], n, p=[0.6 - 0.3 * min(shift, 1), 0.3, 0.1 + 0.3 * min(shift, 1)]
            ),
            "mobile": rng.random(n) < 0.5,
            "score": rng.beta(2 + 2 * shift, 2, n),
        }
    )
    emb = rng.normal(emb_shift, 1.0, (n, len(EMB)))
    return out.assign(**{name: emb[:, i] for i, name in enumerate(EMB)})


SPEC = DriftSpec.infer(frame(10, 0), outputs=["score"], embedding=EMB)


@pytest.mark.parametrize("engine", ["fast", "profile"], ids=["fast", "profile"])
@pytest.mark.parametrize("n", [200, 3000], ids=["n200", "n3000"])
def test_identical_distribution_no_drift_shifted_drift(engine: str, n: int) -> None:
    ref = frame(n, seed=1)
    assert not compare(ref, frame(n, seed=2), SPEC, engine=engine).drifted
    shifted = compare(ref, frame(n, seed=3, shift=0.5), SPEC, engine=engine)
    assert shifted.drifted and shifted.outputs_drifted
    assert {"age", "income", "plan", "score"} <= set(shifted.drifted_columns)
    assert "mobile" not in shifted.drifted_columns


@pytest.mark.parametrize("engine", ["fast", "profile"], ids=["fast", "profile"])
def test_embedding_only_shift_is_caught_by_the_embedding_test(engine: str) -> None:
    result = compare(frame(1500, seed=1), frame(1500, seed=2, emb_shift=0.2), SPEC, engine=engine)
    assert result.embedding_drifted and result.drifted
    assert result.outputs_drifted is False
    assert result.drifted_columns == ("embedding",)


def test_spec_none_tests_every_column() -> None:
    ref = frame(300, seed=1)
    result = compare(ref, frame(300, seed=2))
    assert [c.column for c in result.columns] == list(ref.columns)
    assert result.embedding_drifted is None and result.outputs_drifted is None


def test_result_to_dict_is_json() -> None:
    result = compare(frame(300, seed=1), frame(300, seed=2, shift=1.0), SPEC)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["drifted"] is True
    assert {"column", "method", "score", "p_value", "threshold", "drifted"} <= set(data["columns"][0])
    assert data["policy"].startswith("default: drifted when")
    assert data["n_reference"] == data["n_current"] == 300


def test_unknown_engine_lists_registered_engines() -> None:
    with pytest.raises(UnknownMethodError, match="allowed: evidently, fast, profile"):
        compare(frame(10, 1), frame(10, 2), SPEC, engine="spark")
    assert Engine.keys() == ("evidently", "fast", "profile")


def test_missing_columns_are_named() -> None:
    with pytest.raises(InvalidSpecError, match="current lacks columns: income"):
        compare(frame(50, 1), frame(50, 2).drop(columns=["income"]), SPEC)


def test_huge_windows_ignore_tiny_shifts_but_not_real_ones() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=200_000)})
    tiny = compare(ref, pd.DataFrame({"x": rng.normal(0.02, 1, 200_000)}))
    assert tiny.columns[0].p_value is not None and tiny.columns[0].p_value < 1e-6  # significant...
    assert not tiny.drifted  # ...but below the 0.02 effect floor
    assert compare(ref, pd.DataFrame({"x": rng.normal(0.1, 1, 200_000)})).drifted


def test_unseen_category_under_evidently_chisquare_is_strict_json() -> None:
    ref = pd.DataFrame({"c": ["a", "b", "c"] * 50})
    cur = pd.DataFrame({"c": ["a", "b", "c", "new"] * 30})
    spec = DriftSpec.infer(ref, method_rule="evidently", correction="none")
    column = compare(ref, cur, spec).to_dict()["columns"][0]
    assert (column["method"], column["score"], column["p_value"], column["drifted"]) == ("chisquare", None, 0.0, True)
    json.dumps(column, allow_nan=False)
