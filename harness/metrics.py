"""The unit of output: one named number with its sample count and parameters."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Metric:
    """One reported number. ``params`` distinguish rows of one metric (eps, corruption, batch size...)."""

    name: str
    value: float
    n: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    ci_low: float | None = None
    ci_high: float | None = None
    unit: str = ""


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (well behaved at 0, 1 and small n)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, where rounding
    high = 1.0 if successes == n else min(1.0, centre + half)  # would put the bound past the estimate
    return (low, high)


def proportion(name: str, successes: int, n: int, **params: Any) -> Metric:
    """An accuracy-like metric with its Wilson interval."""
    low, high = wilson_interval(successes, n)
    value = successes / n if n else math.nan
    return Metric(name, value, n, dict(params), low, high)
