"""Effective robustness (Taori et al., 2020, "Measuring robustness to natural distribution shifts in image
classification"): how far a model's accuracy under a shift sits above or below the trend that a testbed of
models traces between in-distribution and shifted accuracy.

The trend is a least-squares line on transformed axes, logit (Taori et al.) or probit (Miller et al., 2021,
"Accuracy on the line"): ``t(shifted) = slope * t(id) + intercept``. A model's effective robustness is
``shifted - t⁻¹(slope * t(id) + intercept)``; its relative robustness is ``shifted - id``. Accuracies are
fractions in [0, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

import numpy as np
from scipy import special, stats

Scale = Literal["logit", "probit"]
SCALES = ("logit", "probit")
EDGE = 1e-4  # accuracies are clipped to [EDGE, 1 - EDGE] before the transform: 0 and 1 have no logit


def transform(accuracy: Any, scale: Scale) -> np.ndarray:
    """Accuracy (fraction) to the axis the trend is straight on."""
    clipped = np.clip(np.asarray(accuracy, dtype=float), EDGE, 1 - EDGE)
    return special.logit(clipped) if scale == "logit" else special.ndtri(clipped)


def untransform(value: Any, scale: Scale) -> np.ndarray:
    return special.expit(value) if scale == "logit" else special.ndtr(value)


@dataclass(frozen=True)
class Trend:
    """A testbed's linear trend between in-distribution and shifted accuracy, on ``scale`` axes."""

    testbed: str
    shift: str
    scale: str
    slope: float
    intercept: float
    r2: float
    n_models: int
    subset: str = "all"  # which testbed models the fit used: all, or a family (cnn, transformer, hybrid)
    id_range: tuple[float, float] = (0.0, 1.0)  # the testbed's in-distribution accuracies: beyond them, extrapolated

    def expected(self, id_accuracy: Any) -> np.ndarray:
        """The shifted accuracy the trend predicts for an in-distribution accuracy."""
        return untransform(self.slope * transform(id_accuracy, self.scale) + self.intercept, self.scale)

    def effective_robustness(self, id_accuracy: Any, shifted_accuracy: Any) -> np.ndarray:
        return np.asarray(shifted_accuracy, dtype=float) - self.expected(id_accuracy)

    def extrapolates(self, id_accuracy: float) -> bool:
        return not self.id_range[0] <= id_accuracy <= self.id_range[1]

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def fit_trend(id_accuracy: Sequence[float], shifted_accuracy: Sequence[float], scale: Scale = "logit",
              testbed: str = "", shift: str = "", subset: str = "all") -> Trend:
    """Least squares of transformed shifted accuracy on transformed in-distribution accuracy."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    x, y = transform(id_accuracy, scale), transform(shifted_accuracy, scale)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} in-distribution accuracies but {len(y)} shifted ones")
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError(f"testbed {testbed or '?'} ({shift or '?'}, {subset}): a trend needs at least 3 models of "
                         f"different in-distribution accuracy, got {len(x)}")
    fit = stats.linregress(x, y)
    ids = np.asarray(id_accuracy, dtype=float)
    return Trend(testbed, shift, scale, float(fit.slope), float(fit.intercept), float(fit.rvalue ** 2), len(x),
                 subset, (float(ids.min()), float(ids.max())))


def bootstrap_accuracies(id_correct: Sequence[bool], shifted_correct: Sequence[bool], resamples: int = 2000,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (in-distribution, shifted) accuracies of one model: its two sets of samples drawn again
    independently (they are different images), as binomial draws at the observed accuracies."""
    rng = np.random.default_rng(seed)
    id_hits, shifted_hits = np.asarray(id_correct, dtype=float), np.asarray(shifted_correct, dtype=float)
    if not len(id_hits) or not len(shifted_hits):
        raise ValueError("an interval needs at least one in-distribution and one shifted sample")
    id_acc = rng.binomial(len(id_hits), id_hits.mean(), resamples) / len(id_hits)
    shifted_acc = rng.binomial(len(shifted_hits), shifted_hits.mean(), resamples) / len(shifted_hits)
    return id_acc, shifted_acc


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def bootstrap_interval(trend: Trend, id_correct: Sequence[bool], shifted_correct: Sequence[bool],
                       resamples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """A percentile interval for one model's effective robustness over resamples of its samples, the trend
    held fixed (its own uncertainty is not included)."""
    id_acc, shifted_acc = bootstrap_accuracies(id_correct, shifted_correct, resamples, seed)
    return percentile_interval(trend.effective_robustness(id_acc, shifted_acc), level)
