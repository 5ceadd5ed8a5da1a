"""Confidence levels and intervals shared by the performance and estimate modules.

>>> round(z_value(0.95), 4)
1.96
>>> [round(v, 4) for v in wilson_interval(4, 6)]
[0.3, 0.9032]
"""

from __future__ import annotations

import math

from scipy import stats

from drift.errors import ValidationError

__all__ = ["check_level", "wilson_interval", "z_value"]


def check_level(name: str, value: float) -> None:
    """Raise :class:`ValidationError` unless ``0 < value < 1`` (a confidence or significance level)."""
    if not 0.0 < value < 1.0:
        raise ValidationError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def z_value(confidence_level: float) -> float:
    """The two-sided standard-normal quantile of ``confidence_level`` (1.96 for 0.95)."""
    check_level("confidence_level", confidence_level)
    return float(stats.norm.ppf(0.5 + confidence_level / 2.0))


def wilson_interval(successes: int, n: int, confidence_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``."""
    if n < 1 or not 0 <= successes <= n:
        raise ValidationError(f"need 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    z = z_value(confidence_level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
