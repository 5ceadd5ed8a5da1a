"""DriftResult.from_dict inverts to_dict, on real results of compare()."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from drift import ColumnDrift, ColumnSpec, DriftResult, DriftSpec, compare
from drift.errors import BadInputError

EMB = [f"e{i}" for i in range(4)]


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, n),
            "plan": rng.choice(["free", "pro", "team"], n, p=[0.5, 0.3, 0.2]),
            "score": rng.beta(2 + 2 * shift, 2, n),
        }
    )
    emb = rng.normal(shift, 1.0, (n, len(EMB)))
    return out.assign(**{name: emb[:, i] for i, name in enumerate(EMB)})


def roundtrip(result: DriftResult) -> DriftResult:
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    back = DriftResult.from_dict(data)
    assert back.to_dict() == data  # exact on the dict side
    return back


@pytest.mark.parametrize("engine", ["fast", "profile"])
@pytest.mark.parametrize("shift", [0.0, 0.5], ids=["same", "shifted"])
def test_finite_result_roundtrips_to_an_equal_dataclass(engine: str, shift: float) -> None:
    spec = DriftSpec.infer(frame(10, 0), outputs=["score"], embedding=EMB)
    result = compare(frame(600, seed=1), frame(600, seed=2, shift=shift), spec, engine=engine)
    assert result.embedding_drifted is not None and result.outputs_drifted is not None
    back = roundtrip(result)
    assert back == result
    assert isinstance(back.columns, tuple) and all(isinstance(c, ColumnDrift) for c in back.columns)


def test_none_fields_stay_none() -> None:
    result = compare(frame(300, seed=1), frame(300, seed=2))  # no outputs, no embedding, all p-value tests
    assert result.outputs_drifted is None and result.embedding_drifted is None
    assert roundtrip(result) == result


def test_distance_methods_keep_p_values_none() -> None:
    spec = DriftSpec.infer(frame(10, 0), method_rule="evidently", correction="none")
    result = compare(frame(2000, seed=1), frame(2000, seed=2, shift=0.3), spec)
    assert {c.method for c in result.columns} == {"wasserstein", "jensenshannon"}
    assert all(c.p_value is None and c.p_adjusted is None for c in result.columns)
    assert roundtrip(result) == result


def test_non_finite_numbers_come_back_as_json_keeps_them() -> None:
    # an unseen category under evidently's chi-square: score = inf, p = 0;
    # a single category tested with chi-square: p = NaN (no degrees of freedom)
    ref = pd.DataFrame({"c": ["a", "b", "c"] * 50, "one": ["x"] * 150})
    cur = pd.DataFrame({"c": ["a", "b", "c", "new"] * 30, "one": ["x"] * 120})
    spec = DriftSpec(
        columns=(
            ColumnSpec(name="c", type="categorical"),
            ColumnSpec(name="one", type="categorical", method="chisquare"),
        )
    ).with_(method_rule="evidently", correction="none")
    result = compare(ref, cur, spec)
    c, one = result.columns
    assert math.isinf(c.score) and c.p_value == 0.0
    assert one.p_value is not None and math.isnan(one.p_value)
    back = roundtrip(result)
    b_c, b_one = back.columns
    assert math.isnan(b_c.score)  # JSON's None for a float field
    assert b_one.p_value is None and b_one.p_adjusted == one.p_adjusted == 1.0  # JSON's None for optional fields
    assert dataclasses.replace(b_c, score=0.0) == dataclasses.replace(c, score=0.0)
    assert b_one == dataclasses.replace(one, p_value=None)
    assert dataclasses.replace(back, columns=()) == dataclasses.replace(result, columns=())


def test_missing_key_and_bad_kind_are_named() -> None:
    data = compare(frame(100, seed=1), frame(100, seed=2)).to_dict()
    with pytest.raises(BadInputError, match="n_current"):
        DriftResult.from_dict({k: v for k, v in data.items() if k != "n_current"})
    data["columns"][0]["kind"] = "label"
    with pytest.raises(BadInputError, match="allowed: feature, output, embedding"):
        DriftResult.from_dict(data)
