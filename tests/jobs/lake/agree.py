"""Assertions shared by the agreement tests: two day states / windows are the same answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from drift import DriftResult, WindowProfile
from jobs.check.job import CheckReport
from jobs.check.state import DayFindings
from jobs.check.windows import WindowOfProfiles

SUM_RTOL = 1e-9  # sums are added in another order: equal up to rounding


def assert_same_profile(a: WindowProfile, b: WindowProfile, *, sample: bool = True) -> None:
    assert a.fingerprint == b.fingerprint and a.n_rows == b.n_rows
    assert set(a.columns) == set(b.columns)
    for name, x in a.columns.items():
        y = b.columns[name]
        dx, dy = x.to_dict(), y.to_dict()
        if dx["kind"] == "numeric":
            assert (dx["cells"], dx["counts"], dx["n_missing"]) == (dy["cells"], dy["counts"], dy["n_missing"]), name
            np.testing.assert_allclose(dx["sums"], dy["sums"], rtol=SUM_RTOL, atol=1e-9, err_msg=name)
            np.testing.assert_allclose([dx["total"], dx["total_sq"]], [dy["total"], dy["total_sq"]], rtol=SUM_RTOL)
            if name == "entropy":  # ln in a database may differ from numpy's log by an ulp
                np.testing.assert_allclose([dx["min"], dx["max"]], [dy["min"], dy["max"]], rtol=1e-14)
            else:
                assert (dx["min"], dx["max"]) == (dy["min"], dy["max"]), name
        else:
            assert dict(map(tuple, dx["counts"])) == dict(map(tuple, dy["counts"])), name
            assert dx["n_missing"] == dy["n_missing"], name
    if sample:
        assert a.sample.keys.tolist() == b.sample.keys.tolist()
        assert a.sample.to_dict() == b.sample.to_dict()  # the stored form


SCORE_RTOL = 1e-9  # outlier scores computed in SQL: the same products added in another order


def assert_same_findings(a: DayFindings, b: DayFindings, *, score_rtol: float = 0.0) -> None:
    """Same counts, outliers and estimate; scores equal, or to ``score_rtol`` (push-down)."""
    assert (a.n_rows, a.n_outliers, a.min_confidence, a.calibration) == (
        b.n_rows,
        b.n_outliers,
        b.min_confidence,
        b.calibration,
    )
    # not the input URI: the pass over stored rows leaves it to the check (it reads the flagged few)
    assert [(f.prediction_id, f.confidence, f.predicted_label) for f in a.outliers] == [
        (f.prediction_id, f.confidence, f.predicted_label) for f in b.outliers
    ]
    scores = [f.score or 0.0 for f in a.outliers], [f.score or 0.0 for f in b.outliers]
    np.testing.assert_allclose(*scores, rtol=score_rtol, atol=0.0)
    if a.estimate is not None or b.estimate is not None:
        assert a.estimate is not None and b.estimate is not None
        x, y = a.estimate, b.estimate
        assert (x.n, x.n_far) == (y.n, y.n_far)
        np.testing.assert_allclose(
            [x.sum_p, x.sum_pq, x.sum_confidence, x.sum_p_far or 0.0],
            [y.sum_p, y.sum_pq, y.sum_confidence, y.sum_p_far or 0.0],
            rtol=SUM_RTOL,
        )


def assert_same_window(
    a: WindowOfProfiles, b: WindowOfProfiles, *, sample: bool = True, score_rtol: float = 0.0
) -> None:
    assert a.profile is not None and b.profile is not None
    assert_same_profile(a.profile, b.profile, sample=sample)
    assert_same_findings(a.findings, b.findings, score_rtol=score_rtol)
    days_a = {d.day: d for d in a.to_store}
    days_b = {d.day: d for d in b.to_store}
    assert sorted(days_a) == sorted(days_b) and len(days_a) == 7
    for day, x in days_a.items():
        y = days_b[day]
        assert x.n_rows == y.n_rows
        assert_same_profile(WindowProfile.from_dict(x.profile), WindowProfile.from_dict(y.profile), sample=sample)
        assert_same_findings(
            DayFindings.from_dict(x.findings), DayFindings.from_dict(y.findings), score_rtol=score_rtol
        )


def assert_same_result(a: DriftResult, b: DriftResult, *, embedding: bool = True) -> None:
    """Same verdicts; scores and p-values equal up to the rounding of sums (the embedding test's
    only where both read the same sample: ``embedding``)."""
    assert (a.drifted, a.outputs_drifted, a.embedding_drifted) == (b.drifted, b.outputs_drifted, b.embedding_drifted)
    cols_a = {c.column: c for c in a.columns if embedding or c.kind != "embedding"}
    cols_b = {c.column: c for c in b.columns if embedding or c.kind != "embedding"}
    assert sorted(cols_a) == sorted(cols_b)
    for name, x in cols_a.items():
        y = cols_b[name]
        assert (x.method, x.drifted) == (y.method, y.drifted), name
        np.testing.assert_allclose([x.score, x.p_value or 0.0], [y.score, y.p_value or 0.0], rtol=1e-7, atol=1e-12)


def summary(result: DriftResult) -> list[tuple[Any, ...]]:
    return [(c.column, c.method, c.drifted) for c in result.columns]


def assert_same_label_findings(a: CheckReport, b: CheckReport) -> None:
    """The findings that need labels (the labelled rows found in the source) and the flagged list."""
    assert a.figures is not None and b.figures is not None
    fa, fb = a.figures.to_dict(), b.figures.to_dict()
    wrong = fa["confidently_wrong"]
    assert wrong is not None and wrong["n_confident"] > 0 and wrong == fb["confidently_wrong"]
    assert fa["realized_performance"] == fb["realized_performance"]
    assert fa["calibration"] == fb["calibration"]
    ea, eb = fa["estimated_performance"], fb["estimated_performance"]
    assert ea is not None and eb is not None
    assert (ea["trustworthy"], ea["unreliable"]) == (eb["trustworthy"], eb["unreliable"])
    np.testing.assert_allclose(ea["accuracy"], eb["accuracy"], rtol=1e-9)
    flagged = [(f.prediction_id, f.kind, f.true_label, f.input_uri) for f in a.flagged]
    assert any(f.kind.value == "confidently_wrong" for f in a.flagged)
    assert flagged == [(f.prediction_id, f.kind, f.true_label, f.input_uri) for f in b.flagged]
