"""Reference testbeds for effective robustness: many models' in-distribution and shifted accuracy, to fit
the trend a model is placed against (harness/robustness/effective.py).

``timm``: timm's published validation results (harness/testbeds/timm/, Apache-2.0, provenance in ORIGIN.md):
some 1,270 ImageNet-1k models on ImageNet val and ImageNetV2, ReaL, Sketch, ImageNet-R and ImageNet-A. For R
and A the in-distribution accuracy is timm's "clean" counterpart (ImageNet val on the same 200 classes, logits
restricted to them), as the shifted accuracy is 200-class masked. ``digits``: the embedded digits testbed
(harness/robustness/digits_testbed.py), small seeded models on handwritten vs printed digits. A testbed can
also be a CSV of one's own
with columns ``model, shift, id_accuracy, shifted_accuracy`` (fractions) and optionally ``family``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.models.family import family_from_name
from harness.robustness.effective import Scale, Trend, fit_trend

TIMM_DIR = Path(__file__).resolve().parent.parent / "testbeds" / "timm"
DIGITS_RESULTS = TIMM_DIR.parent / "digits" / "results.csv"  # written by tools/train_digits_testbed.py


@dataclass(frozen=True)
class TimmShift:
    id_file: str
    shifted_file: str
    protocol: str


TIMM_SHIFTS: dict[str, TimmShift] = {
    "imagenetv2": TimmShift("results-imagenet.csv", "results-imagenetv2-matched-frequency.csv",
                            "ImageNetV2 matched-frequency, 1000-way, against ImageNet val"),
    "imagenet-real": TimmShift("results-imagenet.csv", "results-imagenet-real.csv",
                               "ImageNet val with the ReaL label sets, 1000-way, against ImageNet val"),
    "imagenet-sketch": TimmShift("results-imagenet.csv", "results-sketch.csv",
                                 "ImageNet-Sketch, 1000-way, against ImageNet val"),
    "imagenet-r": TimmShift("results-imagenet-r-clean.csv", "results-imagenet-r.csv",
                            "ImageNet-R, 200-class masked, against ImageNet val on the same 200 classes"),
    "imagenet-a": TimmShift("results-imagenet-a-clean.csv", "results-imagenet-a.csv",
                            "ImageNet-A, 200-class masked, against ImageNet val on the same 200 classes"),
}
COLUMNS = ["model", "shift", "id_accuracy", "shifted_accuracy", "family"]


class BadTestbedError(ValueError):
    """A testbed that cannot be read; the message names the file and the column."""


class UnknownShiftError(BadTestbedError):
    """A readable testbed without the asked-for shift."""


def timm_testbed(shift: str, root: Path = TIMM_DIR) -> pd.DataFrame:
    """One row per model in both of the shift's files: id and shifted top-1 as fractions, the family from the
    architecture name (rows whose family the name does not tell are kept as ``unknown``)."""
    if shift not in TIMM_SHIFTS:
        raise UnknownShiftError(f"testbed timm has no shift {shift!r} (known: {', '.join(TIMM_SHIFTS)})")
    files = TIMM_SHIFTS[shift]
    id_rows = _read_top1(root / files.id_file)
    shifted = _read_top1(root / files.shifted_file)
    both = id_rows.merge(shifted, on="model", suffixes=("_id", "_shifted"), validate="one_to_one")
    return pd.DataFrame({
        "model": both["model"], "shift": shift, "id_accuracy": both["top1_id"] / 100,
        "shifted_accuracy": both["top1_shifted"] / 100,
        "family": [family_from_name(name) or "unknown" for name in both["model"]],
    }).sort_values("model", ignore_index=True)


def csv_testbed(path: Path, shift: str) -> pd.DataFrame:
    """A testbed of one's own: the rows of ``path`` for ``shift``."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BadTestbedError(f"{path}: cannot be read as a CSV ({exc})") from None
    missing = [c for c in COLUMNS[:4] if c not in frame.columns]
    if missing:
        raise BadTestbedError(f"{path}: no column {missing[0]!r} (a testbed has {', '.join(COLUMNS[:4])}[, family])")
    for column in ("id_accuracy", "shifted_accuracy"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[values.isna() | (values < 0) | (values > 1)]
        if len(bad):
            raise BadTestbedError(f"{path}: row {bad[0] + 2}: {column} must be a fraction in [0, 1], got "
                               f"{frame.loc[bad[0], column]!r}")
        frame[column] = values
    rows = frame[frame["shift"] == shift].copy()
    if rows.empty:
        raise UnknownShiftError(f"{path}: no rows for shift {shift!r} (shifts: {', '.join(map(str, frame['shift'].unique()))})")
    if "family" not in rows:
        rows["family"] = [family_from_name(str(name)) or "unknown" for name in rows["model"]]
    return rows[COLUMNS].reset_index(drop=True)


def load_testbed(name: str, shift: str) -> pd.DataFrame:
    """``timm`` or ``digits`` (shipped) or the path of a testbed CSV."""
    if name == "timm":
        return timm_testbed(shift)
    path = DIGITS_RESULTS if name == "digits" else Path(name)
    if not path.is_file():
        raise BadTestbedError(f"unknown testbed {name!r}: give 'timm', 'digits' or the path of a testbed CSV")
    return csv_testbed(path, shift)


def _read_top1(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, usecols=["model", "top1"])
    return frame.drop_duplicates("model")


@dataclass(frozen=True)
class Placement:
    """One (in-distribution, shifted) accuracy pair placed on a testbed's trend."""

    trend: Trend
    id_accuracy: float
    shifted_accuracy: float

    @property
    def expected(self) -> float:
        return float(self.trend.expected(self.id_accuracy))

    @property
    def effective_robustness(self) -> float:
        return self.shifted_accuracy - self.expected

    @property
    def relative_robustness(self) -> float:
        return self.shifted_accuracy - self.id_accuracy

    @property
    def extrapolated(self) -> bool:
        return self.trend.extrapolates(self.id_accuracy)


def trend_of(testbed: str, shift: str, scale: Scale = "logit", subset: str = "all") -> Trend:
    """The trend of a named testbed for one shift, fit on all its models or on one family's."""
    rows = load_testbed(testbed, shift)
    families = sorted(set(rows["family"]) - {"unknown"})
    if subset != "all" and subset not in families:
        raise BadTestbedError(f"testbed {testbed} has no subset {subset!r} (all, {', '.join(families)})")
    if subset != "all":
        rows = rows[rows["family"] == subset]
    return fit_trend(rows["id_accuracy"], rows["shifted_accuracy"], scale, testbed, shift, subset)


def place(id_accuracy: float, shifted_accuracy: float, shift: str, testbed: str = "timm", scale: Scale = "logit",
          subset: str = "all") -> Placement:
    """Effective robustness of numbers a user brings (fractions), against a named testbed's trend."""
    for name, value in (("in-distribution", id_accuracy), ("shifted", shifted_accuracy)):
        if not 0 <= value <= 1:
            raise BadTestbedError(f"{name} accuracy must be a fraction in [0, 1], got {value!r}")
    return Placement(trend_of(testbed, shift, scale, subset), float(id_accuracy), float(shifted_accuracy))
