"""Multiple-testing correction and the dataset verdict.

Why the default verdict looks the way it does
---------------------------------------------
evidently decides per column at a fixed level (p <= 0.05, or distance >= 0.1) and then
calls the dataset drifted when at least 50% of the columns drifted. With ten identical
class-probability columns, "any column drifted" fires on about 30% of identical samples
(ten chances at 5%), while "half of the columns" almost never fires even on real shifts.

The default here treats every p-value test that feeds the verdict (features, outputs
and the embedding's permutation test) as ONE family and corrects it with
Benjamini-Hochberg (``DriftSpec.correction="bh"``) at the tests' level (0.05). The
dataset is drifted when any output column, the embedding, or any feature column
survives the correction. Under no drift, "some test in the family rejects" is the
Simes test of the global null, so the false-alarm rate of the dataset verdict stays at
about 5% whatever the number of columns; and because every rejection by Bonferroni is
also a rejection by BH, the outputs verdict detects at least every shift that
"Failing Loudly" (Rabanser et al. 2019: KS per class probability + Bonferroni) detects
on the same columns.

Two departures from evidently's defaults, both for the false-alarm guarantee:

* Method choice (``DriftSpec.method_rule="stat_test"``): p-value tests whatever the
  reference size (KS numeric, Z-test binary, two-sample chi-square otherwise).
  evidently switches to normed Wasserstein / Jensen-Shannon with a fixed 0.1 threshold
  above 1,000 reference rows; those distances are biased upward on small windows (ten
  rows drawn from the reference itself have a normed Wasserstein distance of about 0.3),
  so a large reference checked on small windows alarms almost always. For categories
  with more than two values evidently's chi-square treats the reference frequencies as
  exact and turns any category unseen in the reference into p = 0; the two-sample test
  of homogeneity (``chisquare_2s``) accounts for both samples' noise.
* Effect-size floor (``DriftPolicy.min_effect=0.02``): on huge windows a p-value test
  flags shifts nobody cares about (that is why evidently switches to distances). A
  p-value test only counts when its effect size also reaches the floor: the KS
  statistic (largest gap between the two CDFs) or the total variation distance between
  category frequencies, i.e. two percentage points of probability mass. Up to 10,000
  rows per side the floor is below the KS critical value at the Bonferroni level, so it
  costs no detection there (every Failing-Loudly rejection has D >= 0.0245 at 10,000
  rows); it only silences statistically significant but tiny shifts on larger windows.

Use ``method_rule="evidently"``, ``correction="none"`` and ``DriftPolicy.evidently()`` to
get evidently's behaviour back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from drift.errors import InvalidSpecError, UnknownMethodError

Correction = Literal["none", "bonferroni", "bh"]
CORRECTIONS: tuple[str, ...] = ("none", "bonferroni", "bh")


def adjust_p_values(p_values: Sequence[float], correction: str) -> np.ndarray:
    """Adjusted p-values for one family.

    ``"bonferroni"``: ``min(1, p * m)``; ``"bh"``: Benjamini-Hochberg step-up adjusted
    p-values (as ``scipy.stats.false_discovery_control``); ``"none"``: unchanged.
    NaN p-values count as 1.
    A test rejects when its adjusted p-value is at or below its level.

    >>> adjust_p_values([0.01, 0.04, 0.03], "bh").round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    if correction not in CORRECTIONS:
        raise UnknownMethodError("correction", correction, CORRECTIONS)
    p = np.asarray(p_values, dtype=float)
    p = np.where(np.isnan(p), 1.0, p)  # an undefined p-value never rejects nor blocks others
    m = p.size
    if m == 0 or correction == "none":
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out


@dataclass(frozen=True, kw_only=True)
class DriftPolicy:
    """Which column verdicts make the dataset "drifted" (the retrain-worthy rule).

    The dataset is drifted when any enabled rule fires:

    Attributes:
        name: a label stored with each run.
        outputs: fire when any output column drifted.
        embedding: fire when the embedding test drifted.
        feature_share: fire when the share of drifted feature columns is above this
            (0.0: any feature); ``None`` disables the rule.
        column_share: evidently's rule: fire when the share of drifted columns among
            features and outputs is at least this; ``None`` disables it.
        min_effect: effect-size floor for p-value tests (KS D or total variation
            distance); 0 disables it.
    """

    name: str = "default"
    outputs: bool = True
    embedding: bool = True
    feature_share: float | None = 0.0
    column_share: float | None = None
    min_effect: float = 0.02

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "name",
        "outputs",
        "embedding",
        "feature_share",
        "column_share",
        "min_effect",
    )

    def __post_init__(self) -> None:
        if self.feature_share is not None and not 0.0 <= self.feature_share < 1.0:
            raise InvalidSpecError(f"feature_share must be in [0, 1) or None, got {self.feature_share!r}")
        if self.column_share is not None and not 0.0 < self.column_share <= 1.0:
            raise InvalidSpecError(f"column_share must be in (0, 1] or None, got {self.column_share!r}")
        if not 0.0 <= self.min_effect < 1.0:
            raise InvalidSpecError(f"min_effect must be in [0, 1), got {self.min_effect!r}")

    @classmethod
    def default(cls) -> DriftPolicy:
        return cls()

    @classmethod
    def evidently(cls, share: float = 0.5) -> DriftPolicy:
        """evidently's DataDriftPreset rule: at least ``share`` of the columns drifted."""
        return cls(
            name=f"evidently share>={share:g}",
            outputs=False,
            embedding=False,
            feature_share=None,
            column_share=share,
            min_effect=0.0,
        )

    @classmethod
    def any_column(cls) -> DriftPolicy:
        """Drifted as soon as one column (feature, output or embedding) drifted."""
        return cls(
            name="any column",
            outputs=True,
            embedding=True,
            feature_share=0.0,
            column_share=None,
            min_effect=0.0,
        )

    def describe(self) -> str:
        rules = []
        if self.outputs:
            rules.append("any output column drifted")
        if self.embedding:
            rules.append("the embedding drifted")
        if self.feature_share is not None:
            rules.append(
                "any feature drifted"
                if self.feature_share == 0
                else f"more than {self.feature_share:.0%} of features drifted"
            )
        if self.column_share is not None:
            rules.append(f"at least {self.column_share:.0%} of columns drifted")
        text = " or ".join(rules) if rules else "never"
        if self.min_effect > 0:
            text += f" (p-value tests count only with effect >= {self.min_effect:g})"
        return f"{self.name}: drifted when {text}"

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self._FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftPolicy:
        return cls(**{k: data[k] for k in cls._FIELDS if k in data})


@dataclass(frozen=True, kw_only=True)
class Verdict:
    drifted: bool
    share_drifted: float
    outputs_drifted: bool | None
    embedding_drifted: bool | None


def decide(
    policy: DriftPolicy,
    *,
    features: Sequence[bool],
    outputs: Sequence[bool],
    embedding: bool | None,
) -> Verdict:
    """Apply ``policy`` to the column verdicts of one comparison."""
    tested = len(features) + len(outputs)
    n_drifted = sum(features) + sum(outputs)
    share = n_drifted / tested if tested else 0.0
    outputs_drifted = any(outputs) if outputs else None
    drifted = False
    if policy.outputs and outputs_drifted:
        drifted = True
    if policy.embedding and embedding:
        drifted = True
    if policy.feature_share is not None and features and sum(features) / len(features) > policy.feature_share:
        drifted = True
    if policy.column_share is not None and tested and share >= policy.column_share:
        drifted = True
    return Verdict(drifted=drifted, share_drifted=share, outputs_drifted=outputs_drifted, embedding_drifted=embedding)
