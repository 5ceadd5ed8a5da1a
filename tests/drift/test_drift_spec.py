"""Specs: validation messages, evidently-style type inference, output columns, JSON."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drift import ColumnSpec, DriftPolicy, DriftSpec, output_frame, output_spec
from drift.errors import InvalidSpecError, UnknownMethodError


def test_infers_types_like_evidently() -> None:
    n = 40
    ref = pd.DataFrame(
        {
            "f": np.linspace(0, 1, n),
            "few_ints": np.arange(n) % 4,
            "many_ints": np.arange(n),
            "flag": np.arange(n) % 2 == 0,
            "s": ["a", "b"] * (n // 2),
            "cat": pd.Categorical(["x", "y"] * (n // 2)),
            "t": pd.date_range("2026-01-01", periods=n),
        }
    )
    spec = DriftSpec.infer(ref, outputs=["f"])
    got = {c.name: (c.type, c.role) for c in spec.columns}
    assert got == {
        "f": ("numeric", "output"),
        "few_ints": ("categorical", "feature"),
        "many_ints": ("numeric", "feature"),
        "flag": ("categorical", "feature"),
        "s": ("categorical", "feature"),
        "cat": ("categorical", "feature"),
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "a", "type": "text"}, InvalidSpecError, "allowed: numeric, categorical"),
        ({"name": "a", "type": "numeric", "role": "label"}, InvalidSpecError, "allowed: feature, output"),
        ({"name": "a", "type": "numeric", "method": "t-test"}, UnknownMethodError, "allowed: chisquare"),
        ({"name": "a", "type": "numeric", "threshold": -1.0}, InvalidSpecError, "threshold must be positive"),
    ],
    ids=["bad-type", "bad-role", "unknown-method", "negative-threshold"],
)
def test_column_spec_validation(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ColumnSpec(**kwargs)  # type: ignore[arg-type]


def test_drift_spec_validation() -> None:
    a = ColumnSpec(name="a", type="numeric")
    with pytest.raises(UnknownMethodError, match="allowed: bh, bonferroni, none"):
        DriftSpec(columns=(a,), correction="fdr")
    with pytest.raises(InvalidSpecError, match="duplicate columns in spec: a"):
        DriftSpec(columns=(a, a))
    with pytest.raises(InvalidSpecError, match="allowed: stat_test, evidently"):
        DriftSpec(columns=(a,), method_rule="auto")


def test_spec_round_trips_through_dict() -> None:
    spec = DriftSpec(
        columns=(ColumnSpec(name="a", type="numeric", method="psi", threshold=0.2),),
        embedding=("e0", "e1"),
        correction="bonferroni",
        policy=DriftPolicy(feature_share=0.3),
    )
    assert DriftSpec.from_dict(spec.to_dict()) == spec


def test_output_frame_values() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]])
    out = output_frame(probs, ["cat", "dog", "eel"])
    assert out["confidence"].tolist() == [0.6, 0.6, 1.0]
    assert out["margin"].round(6).tolist() == [0.3, 0.4, 1.0]
    expected_entropy = -(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1))
    assert out["entropy"].iloc[0] == pytest.approx(expected_entropy)
    assert out["entropy"].iloc[2] == 0.0
    assert out["predicted"].astype(str).tolist() == ["cat", "eel", "cat"]
    assert [c.name for c in output_spec(["cat", "dog", "eel"])] == list(out.columns)
    assert DriftSpec.infer(out, outputs=out.columns).columns[-1].type == "categorical"


def test_output_frame_rejects_mismatched_labels() -> None:
    with pytest.raises(InvalidSpecError, match="for 2 class labels"):
        output_frame(np.ones((4, 3)) / 3, ["a", "b"])
