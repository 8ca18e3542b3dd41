"""Report figures for the adversarial tasks: robust accuracy vs eps per model, and per camp (CNN vs transformer).

Each curve starts at eps = 0 with the clean accuracy on the same samples.
"""
from __future__ import annotations

import pandas as pd

from harness.registry import REPORT_SECTIONS
from harness.report.plotting import line_chart
from harness.formatting import format_param
from harness.report.tables import unreliable_jobs


def _curves(task_rows: pd.DataFrame, norm: str, trusted: bool = False) -> dict[str, tuple[str, list[tuple[float, float]]]]:
    """model -> (family, [(eps, accuracy), ...]) including (0, clean accuracy). Models whose robustness is
    flagged unreliable are labelled so (or left out when ``trusted``)."""
    series: dict[str, tuple[str, list[tuple[float, float]]]] = {}
    unreliable = {model for model, _, _ in unreliable_jobs(task_rows)}
    for model, rows in task_rows.groupby("model", sort=True):
        if trusted and model in unreliable:
            continue
        robust = [(float(p["eps"]), float(v)) for p, v, m in zip(rows["params"], rows["value"], rows["metric"])
                  if m == "robust_acc" and p.get("norm") == norm]
        if not robust:
            continue
        clean = rows.loc[rows["metric"] == "clean_acc", "value"]
        points = ([(0.0, float(clean.iloc[0]))] if len(clean) else []) + robust
        label = f"{model} (unreliable)" if model in unreliable else str(model)
        series[label] = (str(rows["family"].iloc[0]), sorted(points))
    return series


def _family_means(series: dict[str, tuple[str, list[tuple[float, float]]]]) -> dict[str, tuple[str, list[tuple[float, float]]]]:
    """family -> (family, [(eps, mean accuracy over that family's models), ...])."""
    frame = pd.DataFrame([(family, x, y) for family, points in series.values() for x, y in points],
                         columns=["family", "eps", "acc"])
    means = frame.groupby(["family", "eps"])["acc"].mean().reset_index()
    return {f"{family} mean ({sum(1 for fam, _ in series.values() if fam == family)} models)":
            (family, list(zip(part["eps"], part["acc"]))) for family, part in means.groupby("family")}


def adversarial_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    sections = []
    norms = sorted({p.get("norm") for p, m in zip(task_rows["params"], task_rows["metric"]) if m == "robust_acc"})
    for norm in norms:
        series = _curves(task_rows, norm)
        if not series:
            continue
        eps_values = sorted({x for _, points in series.values() for x, _ in points})
        ticks = [(x, "0" if x == 0 else format_param(x)) for x in eps_values]
        label = f"{norm} eps (pixel units)"
        sections.append((f"Robust accuracy vs {norm} eps",
                         line_chart(series, label, "accuracy", f"robust accuracy vs {norm} eps", ticks, (0.0, 1.0))))
        trusted = _curves(task_rows, norm, trusted=True)
        if not trusted:
            continue
        sections.append((f"CNN vs transformer: mean robust accuracy vs {norm} eps (reliable models only)",
                         line_chart(_family_means(trusted), label, "mean accuracy",
                                    f"mean robust accuracy per family vs {norm} eps", ticks, (0.0, 1.0))))
    return sections


REPORT_SECTIONS.register("pgd")(adversarial_sections)
REPORT_SECTIONS.register("autoattack")(adversarial_sections)
