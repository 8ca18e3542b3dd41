"""What the gate tests and how strictly: a suite's ``gate:`` section.

```yaml
gate:
  alpha: 0.05          # significance level of every test (and 1 - level of every interval)
  max_drop: 0.0        # tolerated drop: absolute in the metric's units, or "2%" relative to the baseline
  metrics:             # per-metric overrides (fnmatch patterns); listing a metric gates it
    top1: {min_value: 0.97}
    top5: {gate: false}
    latency_ms_p50: {max_ratio: 1.25}
```
By default the gate tests headline metrics of kind proportion or dataset (accuracies, mAP, mIoU, PQ):
timings move with the machine and are gated only when listed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Mapping

DEFAULT_KINDS = ("proportion", "dataset")


class GatePolicyError(ValueError):
    """A ``gate:`` section that cannot be used; the message names the field."""


@dataclass(frozen=True)
class MetricPolicy:
    gate: bool | None = None  # None: the default rule (headline metric of a default kind)
    alpha: float = 0.05
    # 0 by default: an unchanged model reproduces every sample, an equivalent one differs by chance and the
    # test holds false alarms under alpha, so any significant drop is worth a look; suites with a known
    # tolerance (a different GPU, non-deterministic kernels) set one.
    max_drop: float = 0.0
    relative: bool = False  # max_drop is a fraction of the baseline value ("2%")
    min_value: float | None = None  # floor for higher-is-better metrics (new value below it: regression)
    max_value: float | None = None  # ceiling for lower-is-better metrics
    max_ratio: float = 1.10  # timings: tolerated slowdown ratio (new / baseline, or its inverse for rates)
    resamples: int = 1000  # paired bootstrap draws for dataset-level metrics
    seed: int = 0  # of the bootstrap

    def tolerance(self, baseline_value: float) -> float:
        """The drop tolerated, in the metric's units."""
        return self.max_drop * abs(baseline_value) if self.relative else self.max_drop

    def describe(self) -> dict[str, Any]:
        out = {"alpha": self.alpha, "max_drop": f"{self.max_drop:.6g}" + (" (relative)" if self.relative else "")}
        for name in ("min_value", "max_value"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class GatePolicy:
    default: MetricPolicy = field(default_factory=MetricPolicy)
    metrics: dict[str, MetricPolicy] = field(default_factory=dict)  # fnmatch pattern -> policy
    kinds: tuple[str, ...] = DEFAULT_KINDS
    headline_only: bool = True
    # a baseline from another device or precision is not comparable unless the suite says so: numbers that
    # depend on the device (TF32, cuDNN kernels, timings) would read as regressions that are not
    across_devices: bool = False

    def for_metric(self, name: str) -> MetricPolicy:
        for pattern, policy in self.metrics.items():
            if fnmatchcase(name, pattern):
                return policy
        return self.default

    def gated(self, name: str, kind: str, headline: bool, direction: str) -> bool:
        if direction not in ("higher", "lower"):
            return False
        explicit = self.for_metric(name).gate
        if explicit is not None:
            return explicit
        return kind in self.kinds and (headline or not self.headline_only)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "gate") -> "GatePolicy":
        """Parse a ``gate:`` mapping; errors read ``<where>.<field>: <problem>``."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise GatePolicyError(f"{where}: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        overrides = data.pop("metrics", None) or {}
        kinds = data.pop("kinds", DEFAULT_KINDS)
        headline_only = data.pop("headline_only", True)
        across_devices = data.pop("across_devices", False)
        if not isinstance(across_devices, bool):
            raise GatePolicyError(f"{where}.across_devices: expected true or false")
        if not isinstance(kinds, (list, tuple)) or not all(isinstance(k, str) for k in kinds):
            raise GatePolicyError(f"{where}.kinds: expected a list of metric kinds")
        if not isinstance(headline_only, bool):
            raise GatePolicyError(f"{where}.headline_only: expected true or false")
        default = _metric_policy(data, MetricPolicy(), where)
        if not isinstance(overrides, Mapping):
            raise GatePolicyError(f"{where}.metrics: expected a mapping of metric name -> policy")
        metrics = {}
        for name, fields in overrides.items():
            fields = dict(fields or {})
            fields.setdefault("gate", True)  # listing a metric gates it
            metrics[str(name)] = _metric_policy(fields, default, f"{where}.metrics.{name}")
        return cls(default, metrics, tuple(kinds), headline_only, across_devices)


def _metric_policy(fields: Mapping[str, Any], base: MetricPolicy, where: str) -> MetricPolicy:
    if not isinstance(fields, Mapping):
        raise GatePolicyError(f"{where}: expected a mapping")
    known = {f.name for f in dataclasses.fields(MetricPolicy)} - {"relative"}
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in known:
            raise GatePolicyError(f"{where}.{name}: unknown field (expected one of {', '.join(sorted(known))})")
        if name == "max_drop":
            changes["max_drop"], changes["relative"] = _drop(value, f"{where}.max_drop")
        elif name == "gate":
            if not isinstance(value, bool):
                raise GatePolicyError(f"{where}.gate: expected true or false")
            changes["gate"] = value
        elif name in ("resamples", "seed"):
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name == "resamples" else 0):
                raise GatePolicyError(f"{where}.{name}: expected a {'positive' if name == 'resamples' else 'non-negative'}"
                                      " integer")
            changes[name] = value
        else:
            number = _number(value, f"{where}.{name}")
            if name == "alpha" and not 0 < number < 1:
                raise GatePolicyError(f"{where}.alpha: must lie strictly between 0 and 1, got {value}")
            if name == "max_ratio" and number < 1:
                raise GatePolicyError(f"{where}.max_ratio: must be at least 1, got {value}")
            changes[name] = number
    return dataclasses.replace(base, **changes)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GatePolicyError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _drop(value: Any, where: str) -> tuple[float, bool]:
    """``0.01`` (absolute) or ``"2%"`` (relative to the baseline value)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            amount = float(value.strip()[:-1]) / 100
        except ValueError:
            raise GatePolicyError(f"{where}: expected a number or a percentage like '2%', got {value!r}") from None
        relative = True
    elif isinstance(value, str):
        raise GatePolicyError(f"{where}: expected a number or a percentage like '2%', got {value!r}")
    else:
        amount, relative = _number(value, where), False
    if amount < 0:
        raise GatePolicyError(f"{where}: must not be negative, got {value!r}")
    return amount, relative
