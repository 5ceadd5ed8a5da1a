"""Label-free accuracy estimators beside :mod:`drift.estimate`'s calibrated confidence.

* :mod:`drift.estimators.confidence`: ATC (average thresholded confidence), DoC (difference of
  confidences) and the embedding-coverage test that marks an estimate unreliable;
* :mod:`drift.estimators.weighting`: importance weighting of the labelled reference towards a
  window by a domain classifier on embeddings.

Every estimator returns a :class:`~drift.estimate.AccuracyEstimate`.
"""

from __future__ import annotations

from drift.estimators.confidence import (
    ATCEstimator,
    Coverage,
    DoCEstimator,
    ThresholdCounts,
    coverage_adjusted,
    embedding_coverage,
)
from drift.estimators.weighting import DomainWeights, domain_weights, importance_weighted_accuracy

__all__ = [
    "ATCEstimator",
    "Coverage",
    "DoCEstimator",
    "DomainWeights",
    "ThresholdCounts",
    "coverage_adjusted",
    "domain_weights",
    "embedding_coverage",
    "importance_weighted_accuracy",
]
