"""The unit of output: one named number with its sample count, parameters and declared meaning.

Every metric name is declared once (``declare``) with its direction, unit, whether it is a headline
number, what kind of statistic it is and how it is obtained (protocol text, range, the per-sample record
fields it is computed from); the report, summaries and the regression gate read that
declaration and never guess from the name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

Direction = Literal["higher", "lower", "none"]
# proportion: a count of successes over n samples (McNemar / Wilson apply)
# dataset: a dataset-level statistic such as mAP, mIoU, PQ (bootstrap over images)
# timing: a measured time or rate (compared over repeats)
# value: anything else (counts, derived ratios, flags)
StatKind = Literal["proportion", "dataset", "timing", "value"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    direction: Direction
    unit: str = ""
    headline: bool = True  # shown in leaderboard tables; detail metrics go to figures and exports
    kind: StatKind = "value"
    description: str = ""
    protocol: str = ""  # how the number is obtained, in one sentence (shown with the table it is in)
    range: tuple[float, float] | None = None  # the values it can take, e.g. (0, 1) for a proportion
    record_fields: tuple[str, ...] = ()  # the per-sample record fields it is computed from
    # (flag metric, why): a value whose job also stored the flag metric > 0 with the same params is marked
    # with ``why`` wherever it is shown (e.g. effective robustness placed on an extrapolated trend)
    caveat: tuple[str, str] | None = None


METRIC_INFO: dict[str, MetricInfo] = {}


def declare(name: str, direction: Direction, unit: str = "", headline: bool = True, kind: StatKind = "value",
            description: str = "", protocol: str = "", range: tuple[float, float] | None = None,
            record_fields: tuple[str, ...] = (), caveat: tuple[str, str] | None = None) -> MetricInfo:
    info = MetricInfo(name, direction, unit, headline, kind, description, protocol, range, tuple(record_fields),
                      caveat)
    if METRIC_INFO.get(name, info) != info:
        raise ValueError(f"metric {name!r} is declared twice with different meanings")
    METRIC_INFO[name] = info
    return info


def metric_info(name: str) -> MetricInfo:
    try:
        return METRIC_INFO[name]
    except KeyError:
        raise KeyError(f"metric {name!r} was never declared (harness.metrics.declare)") from None


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

    @property
    def info(self) -> MetricInfo:
        return metric_info(self.name)


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


def trapezoid_weights(points: Sequence[float]) -> list[float]:
    """Weights w with sum(w[j] * y[j]) the area under the piecewise-linear curve through (points[j], y[j]),
    divided by its width: the normalised area under an accuracy curve (occlusion fractions, attack eps)."""
    width = points[-1] - points[0]
    weights = [0.0] * len(points)
    for j in range(len(points) - 1):
        half = (points[j + 1] - points[j]) / 2 / width
        weights[j] += half
        weights[j + 1] += half
    return weights
