"""The evidently engine: ``Report([DataDriftPreset(...)])`` on the rows, mapped to a DriftResult.

evidently is imported inside the functions here (it takes seconds to import). The
column types come from the spec (passed as an explicit ``DataDefinition``). Columns
whose spec names a method, and every column under ``method_rule="stat_test"``, get that
method through ``per_column_method``; under ``method_rule="evidently"`` and no override,
evidently picks the method itself and the result records which one it picked.

``chisquare_2s`` is not an evidently test; it is registered into evidently's stat-test
registry on first use so that it runs inside the report too. evidently reports one value
per column (the p-value of a test, or the distance); effect sizes for the policy's
``min_effect`` floor are computed here with numpy (only when the floor is on). The
embedding is tested with :func:`drift.embedding.mmd_test` on the rows' bounded samples,
as on the other engines; evidently's own embedding drift is not used.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from drift.binned import CategoryCounts, ColumnData
from drift.engine_base import Engine, TestedColumn, assemble, embedding_from_rows
from drift.errors import DriftkeeperError
from drift.methods import ChiSquare2s, DriftMethod, Score, default_method
from drift.result import DriftResult
from drift.spec import DriftSpec

_REGISTERED = False


def _register_custom_tests() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    def _chisquare_2s(ref: pd.Series, cur: pd.Series, feature_type: Any, threshold: float) -> tuple[float, bool]:
        data = ColumnData(name=str(ref.name), type="categorical", categorical=CategoryCounts.from_values(ref, cur))
        p = ChiSquare2s().score(data).p_value
        assert p is not None
        return p, p < threshold

    test = StatTest(
        name="chisquare_2s",
        display_name="two-sample chi-square p_value",
        allowed_feature_types=[ColumnType.Categorical, ColumnType.Numerical],
    )
    register_stattest(test, default_impl=_chisquare_2s)
    _REGISTERED = True


def _method_names() -> dict[str, str]:
    """evidently's method names and display names → our method keys."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    names: dict[str, str] = {}
    for key in DriftMethod.keys():  # noqa: SIM118 (a registry method, not dict.keys)
        names[key] = key
        for test in _registered_stat_tests.get(key, {}).values():
            names[test.display_name] = key
    return names


def run_report(reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec) -> list[dict[str, Any]]:
    """Run evidently's DataDriftPreset; returns one ``{"column", "method", "threshold", "value"}``
    per column. Errors from evidently are raised as DriftkeeperError."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    _register_custom_tests()
    methods: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    for col in spec.columns:
        if col.method is not None:
            methods[col.name] = col.method
        elif spec.method_rule != "evidently":
            data = ColumnData.from_series(col.name, col.type, reference[col.name], current[col.name])
            methods[col.name] = default_method(data, spec.method_rule)
        if col.threshold is not None:
            thresholds[col.name] = col.threshold
    numeric = [c.name for c in spec.columns if c.type == "numeric"]
    categorical = [c.name for c in spec.columns if c.type == "categorical"]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    cols = list(spec.column_names)
    try:
        with warnings.catch_warnings():
            # evidently's chi-square divides by zero expected counts for unseen categories (p = 0 by design)
            warnings.filterwarnings("ignore", message="divide by zero encountered", category=RuntimeWarning)
            report = Report(
                [
                    DataDriftPreset(
                        columns=cols,
                        per_column_method=methods or None,
                        per_column_threshold=thresholds or None,
                    )
                ]
            )
            snapshot = report.run(
                Dataset.from_pandas(current[cols], data_definition=definition),
                Dataset.from_pandas(reference[cols], data_definition=definition),
            )
            metrics = snapshot.dict()["metrics"]
    except Exception as exc:  # evidently raises bare ValueError/KeyError on bad input
        raise DriftkeeperError(f"evidently DataDriftPreset failed: {exc}") from exc
    out = []
    for m in metrics:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            out.append(
                {
                    "column": cfg["column"],
                    "method": cfg["method"],
                    "threshold": cfg.get("threshold"),
                    "value": float(m["value"]),
                }
            )
    return out


class EvidentlyEngine(Engine, key="evidently"):
    """evidently's DataDriftPreset as the reference implementation."""

    def run(self, reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec) -> DriftResult:
        rows = {r["column"]: r for r in run_report(reference, current, spec)}
        names = _method_names()
        tested = []
        for col in spec.columns:
            row = rows[col.name]
            key = names.get(row["method"])
            if key is None:
                raise DriftkeeperError(f"evidently used method {row['method']!r}, unknown to drift")
            method = DriftMethod.get(key)
            threshold = float(row["threshold"]) if row["threshold"] is not None else method.default_threshold
            value = row["value"]
            effect = value
            if method.has_p_value and spec.policy.min_effect > 0:
                data = ColumnData.from_series(col.name, col.type, reference[col.name], current[col.name])
                effect = method().score(data).effect
            score = Score(score=value, p_value=value if method.has_p_value else None, effect=effect)
            tested.append(TestedColumn(spec=col, method=key, score=score, threshold=threshold))
        return assemble(
            spec,
            tested,
            embedding_from_rows(reference, current, spec),
            engine=self.key,
            n_reference=len(reference),
            n_current=len(current),
        )
