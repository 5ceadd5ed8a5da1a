"""The push-down findings read bounded results: grouped calibrated sums, the top outliers, rows by id."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from drift.calibration import ConfidenceCalibrator
from drift.class_calibration import Calibrator, ClassCalibrator
from drift.errors import ConfigError
from drift.estimate import CalibratedSums
from drift.outliers import EmbeddingOutlierDetector
from jobs.check.state import Calibration, DayFindings
from jobs.pushdown import engine as pushdown_engine
from jobs.pushdown.calibrated import CellPlan
from tests.jobs.lake.agree import SCORE_RTOL, SUM_RTOL, assert_same_findings
from tests.jobs.lake.conftest import World
from tests.jobs.logdata import CLASSES
from tests.jobs.pushdown.source import Pass, pushdown_pass

# the queries run in the source (PostgreSQL); driftkeeper's own database only holds the world's
# stored rows to compare with: one backend here, both in test_pushdown.py and test_scale.py
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def pushed(world: World, source_url: str) -> Pass:
    return pushdown_pass(world, source_url)


def _calibrator(p: Pass, method: str) -> Calibrator:
    """A calibrator fitted on 3,000 of the week's rows (so many week confidences lie on a knot)."""
    rng = np.random.default_rng(11)
    conf = np.concatenate([d.confidence for d in p.days])[:3000]
    pred = np.concatenate([d.predicted_label for d in p.days])[:3000]
    correct = rng.random(conf.size) < conf
    if method == "per-label":  # isotonic per predicted label, with the global one for the rest
        return ClassCalibrator(200).fit(conf, correct, pred)
    return ConfidenceCalibrator("isotonic" if method == "isotonic" else "histogram", n_bins=10).fit(conf, correct)


@pytest.mark.parametrize("method", ["isotonic", "histogram", "per-label"])
def test_grouped_calibration_is_bounded_and_gives_the_row_sums(pushed: Pass, method: str) -> None:
    detector = pushed.inputs.detector
    assert detector is not None
    calibration = Calibration(calibrator=_calibrator(pushed, method), fingerprint=f"test-{method}")
    inputs = replace(pushed.inputs, calibration=calibration)
    states = pushed.engine.compute(1, pushed.segments, pushed.reference, inputs)
    plan = CellPlan.of(calibration.calibrator)
    bound = len(pushed.days) * plan.n_cells(CLASSES) * 2
    read = pushed.engine.reads["calibration"]
    assert 0 < read <= bound
    on_knot = 0
    for day in pushed.days:
        far = detector.score(day.embedding) > detector.threshold_
        want = CalibratedSums.of(calibration.calibrator, day.confidence, day.predicted_label, far)
        got = states[day.start].findings.estimate
        assert got is not None and want.n_far is not None and want.n_far > 0
        assert (got.n, got.n_far) == (want.n, want.n_far)
        np.testing.assert_allclose(
            [got.sum_p, got.sum_pq, got.sum_confidence, np.nan if got.sum_p_far is None else got.sum_p_far],
            [want.sum_p, want.sum_pq, want.sum_confidence, np.nan if want.sum_p_far is None else want.sum_p_far],
            rtol=SUM_RTOL,
        )
        for label in CLASSES:
            knots = plan.parts[plan.part(label)][1].knots
            on_knot += int(np.isin(day.confidence[day.predicted_label == label], knots).sum())
    assert on_knot > 0  # the knots' own cells were exercised


def test_without_a_detector_the_far_rows_are_not_known_and_no_outlier_travels(pushed: Pass) -> None:
    inputs = replace(pushed.inputs, detector=None)
    assert inputs.calibration is not None
    states = pushed.engine.compute(1, pushed.segments, pushed.reference, inputs)
    for day in pushed.days:
        got = states[day.start].findings
        want = CalibratedSums.of(inputs.calibration.calibrator, day.confidence, day.predicted_label)
        assert got.estimate is not None and (got.estimate.n, got.estimate.n_far) == (want.n, None)
        np.testing.assert_allclose([got.estimate.sum_p, got.estimate.sum_pq], [want.sum_p, want.sum_pq], rtol=SUM_RTOL)
        assert (got.n_outliers, got.outliers) == (0, ())
    assert pushed.engine.reads["outliers"] == 0


def test_only_the_top_outliers_travel(pushed: Pass) -> None:
    inputs = replace(pushed.inputs, top_k=3)
    assert inputs.detector is not None
    states = pushed.engine.compute(1, pushed.segments, pushed.reference, inputs)
    travelled = pushed.engine.reads["outliers"]
    assert travelled <= 3 * len(pushed.days)
    assert sum(s.findings.n_outliers for s in states.values()) > travelled  # some were left in the database
    for day in pushed.days:
        want = DayFindings.of_rows(
            prediction_id=day.prediction_id,
            confidence=day.confidence,
            predicted_label=day.predicted_label,
            input_uri=day.input_uri,
            embedding=day.embedding,
            detector=inputs.detector,
            min_confidence=inputs.min_confidence,
            calibration=inputs.calibration,
            top_k=3,
        )
        got = states[day.start].findings
        assert len(got.outliers) == min(3, want.n_outliers)
        assert_same_findings(want, got, score_rtol=SCORE_RTOL)
        assert [f.input_uri for f in got.outliers] == [f.input_uri for f in want.outliers]
        assert all(f.input_uri is not None for f in got.outliers)
        scores = [f.score or 0.0 for f in got.outliers]
        assert scores == sorted(scores, reverse=True)
        assert all(s > inputs.detector.threshold_ for s in scores)
        np.testing.assert_allclose(scores, [f.score or 0.0 for f in want.outliers], rtol=SCORE_RTOL)


def test_a_knn_detector_is_refused(pushed: Pass) -> None:
    knn = EmbeddingOutlierDetector(kind="knn", k=3).fit(np.random.default_rng(0).normal(size=(50, 4)))
    with pytest.raises(ConfigError, match="Mahalanobis"):
        pushed.engine.compute(1, pushed.segments, pushed.reference, replace(pushed.inputs, detector=knn))


@pytest.mark.parametrize("per_query", [pushdown_engine.IDS_PER_QUERY, 7])
def test_rows_by_id_gives_the_stored_rows_values(pushed: Pass, per_query: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pushdown_engine, "IDS_PER_QUERY", per_query)
    inside, later = pushed.days[2], pushed.days[5]
    pick = np.random.default_rng(2).choice(len(inside.prediction_id), 40, replace=False)
    wanted = [str(i) for i in inside.prediction_id[pick]]
    # a rejected row (probabilities sum to 1.5) of that day, an unknown id, ids of a later day
    ids = [*wanted, "p900000", "no-such-id", *(str(i) for i in later.prediction_id[:5])]
    start = inside.start
    end = pushed.segments[2][1]
    rows = pushed.engine.rows_by_id(1, start, end, ids)
    assert sorted(rows.prediction_id.tolist()) == sorted(wanted)
    order = np.argsort(rows.prediction_id.astype(str))
    stored = np.argsort(inside.prediction_id[pick].astype(str))
    assert rows.confidence[order].tolist() == inside.confidence[pick][stored].tolist()
    assert rows.predicted_label[order].tolist() == inside.predicted_label[pick][stored].tolist()
    assert rows.input_uri[order].tolist() == inside.input_uri[pick][stored].tolist()
    assert pushed.engine.reads["ids"] == len(wanted)
    assert len(pushed.engine.rows_by_id(2, start, end, ids)) == 0  # an unknown version
    assert len(pushed.engine.rows_by_id(1, start, start, [])) == 0
