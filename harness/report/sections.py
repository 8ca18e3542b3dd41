"""Each task's own report figures (the ``REPORT_SECTIONS`` registry), drawn the same way for a run's report
and for the published site: a task, built in or from a plugin, registers one function and appears on both."""
from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from harness.registry import REPORT_SECTIONS
from harness.report import (corruption_figures, detection_figures, latency_figures,  # noqa: F401  (they
                            robustness_figures, segmentation_figures)  # register their sections)


def task_figures(part: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(title, safe svg/html) of one table's task (one task on one dataset). A section gets its task's rows
    and, for cross-task plots, all rows, both without missing values (a figure plots numbers; the tables show
    what is missing). A figure that cannot be drawn is reported in its place, so the rest of the page is written."""
    kind = part["task_kind"].iloc[0]
    if kind not in REPORT_SECTIONS:
        return []
    present = part[part["value"].notna()]
    if present.empty:
        return []
    try:
        return REPORT_SECTIONS.get(kind)(present, all_rows[all_rows["value"].notna()])
    except Exception as exc:  # noqa: BLE001 - one broken figure must not cost the whole page
        return [not_drawn(f"the {kind} figures", exc)]


def not_drawn(what: str, exc: Exception) -> tuple[str, str]:
    message = str(Markup.escape(f"{type(exc).__name__}: {exc}"))
    return ("Figures not drawn", f'<p class="figure-error">{what} could not be drawn from the stored results '
                                 f"({message})</p>")
