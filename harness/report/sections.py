"""Each task's own report figures (the ``REPORT_SECTIONS`` registry), drawn the same way for a run's report
and for the published site: a task, built in or from a plugin, registers one function under its kind and
appears on both. An evaluator that attaches to any task registers under the name of a metric it computes:
its section is drawn wherever that metric has rows."""
from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from harness.registry import REPORT_SECTIONS
from harness.report import (  # noqa: F401  (they register their sections)
    corruption_figures, detection_figures, latency_figures, occlusion_figures, robustness_figures,
    segmentation_figures, shift_figures, uncertainty_figures)


def task_figures(part: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(title, safe svg/html) of one table's task (one task on one dataset). A section gets its task's rows
    and, for cross-task plots, all rows, both without missing values (a figure plots numbers; the tables show
    what is missing). A figure that cannot be drawn is reported in its place, so the rest of the page is written."""
    present = part[part["value"].notna()]
    if present.empty:
        return []
    kind = part["task_kind"].iloc[0]
    keys = [kind, *(m for m in dict.fromkeys(present["metric"]) if m != kind)]
    sections = []
    for key in (k for k in keys if k in REPORT_SECTIONS):
        try:
            sections += REPORT_SECTIONS.get(key)(present, all_rows[all_rows["value"].notna()])
        except Exception as exc:  # noqa: BLE001 - one broken figure must not cost the whole page
            sections.append(not_drawn(f"the {key} figures", exc))
    return sections


def not_drawn(what: str, exc: Exception) -> tuple[str, str]:
    message = str(Markup.escape(f"{type(exc).__name__}: {exc}"))
    return ("Figures not drawn", f'<p class="figure-error">{what} could not be drawn from the stored results '
                                 f"({message})</p>")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def task_anchor(task: str, dataset: str) -> str:
    """The id of one task's table on a page (the run report and the site's suite page)."""
    return f"t-{_slug(task)}--{_slug(dataset)}"


def figure_anchor(task: str, dataset: str, title: str) -> str:
    """The id of one figure of a task's section: a scorecard row links to the figure behind it."""
    return f"{task_anchor(task, dataset)}--{_slug(title)}"
