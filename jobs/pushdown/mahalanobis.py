"""The Mahalanobis outlier score of :class:`~drift.outliers.EmbeddingOutlierDetector` as SQL.

The local pass scores a row as ``sqrt(max(d2, 0))`` with ``d2 = c @ precision @ c`` and
``c = x - location`` (``x``: the stored float32 embedding, widened to float64). Here, with the
Cholesky factor ``L`` of the precision (``precision = L L^T``), ``d2 = ||L^T c||^2``: one linear
combination per embedding dimension (the triangle of ``L``, ``width (width + 1) / 2`` products
in all), squared and added. Where the precision has no Cholesky factor (not positive definite
in floating point), ``d2 = c . (precision c)`` is written out instead. Either adds the same
products in another order than numpy's BLAS, so a score equals the local one up to rounding
(~1e-13 relative), not to the last bit.

Each step is a subquery fenced by ``OFFSET 0``: PostgreSQL would otherwise inline a column's
expression wherever it is used, computing every centred value once per combination.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drift.errors import ConfigError
from drift.outliers import EmbeddingOutlierDetector


def literal(x: float) -> str:
    """A float8 constant that reads back as exactly ``x`` (``repr`` round-trips)."""
    return f"'{float(x)!r}'::float8"


@dataclass(frozen=True, kw_only=True)
class MahalanobisSql:
    """A fitted Mahalanobis detector's score as SQL over the embedding columns."""

    location: tuple[float, ...]
    rows: tuple[tuple[float, ...], ...]  # coefficient rows: z_j = sum_i rows[j][i] * c_i
    squares: bool  # d2 = sum_j z_j^2 (Cholesky) or sum_j c_j z_j (the precision itself)
    threshold: float

    @classmethod
    def of(cls, detector: EmbeddingOutlierDetector) -> MahalanobisSql:
        if detector.kind != "mahalanobis" or not hasattr(detector, "precision_"):
            raise ConfigError(
                f"compute: pushdown scores Mahalanobis outlier detectors only, not {detector.kind!r}: use compute: pull"
            )
        precision = np.asarray(detector.precision_, dtype=np.float64)
        try:
            rows, squares = np.linalg.cholesky(precision).T, True
        except np.linalg.LinAlgError:
            rows, squares = precision, False
        return cls(
            location=tuple(float(v) for v in detector.location_),
            rows=tuple(tuple(float(v) for v in r) for r in rows),
            squares=squares,
            threshold=float(detector.threshold_),
        )

    @property
    def width(self) -> int:
        return len(self.location)

    def centred(self, embedding: Sequence[str]) -> list[str]:
        """The centred embedding as the columns ``dk_c<i>`` (each value cast to real, as stored)."""
        if len(embedding) != self.width:
            raise ConfigError(f"the outlier detector has {self.width} dimensions, the embedding {len(embedding)}")
        return [
            f"(({e})::real::float8 - {literal(mu)}) AS dk_c{i}"
            for i, (e, mu) in enumerate(zip(embedding, self.location, strict=True))
        ]

    def projected(self) -> list[str]:
        """The columns ``dk_z<j>``: the combinations of the centred columns."""
        out = []
        for j, row in enumerate(self.rows):
            terms = [f"{literal(a)} * dk_c{i}" for i, a in enumerate(row) if a != 0.0]
            out.append(f"({' + '.join(terms) if terms else '0.0::float8'}) AS dk_z{j}")
        return out

    def distance(self) -> str:
        """The score, from the ``dk_z<j>`` (and, without squares, the ``dk_c<j>``) columns."""
        if self.squares:
            d2 = " + ".join(f"dk_z{j} * dk_z{j}" for j in range(self.width))
        else:
            d2 = " + ".join(f"dk_c{j} * dk_z{j}" for j in range(self.width))
        return f"sqrt(GREATEST({d2}, 0.0::float8))"
