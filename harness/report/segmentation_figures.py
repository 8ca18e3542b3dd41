"""Report sections of the semantic segmentation and panoptic tasks: per-class tables (collapsible), PQ split
into things and stuff by family, and qualitative overlays — the same few test images, their ground truth and
every model's prediction side by side, as the small PNGs the evaluators keep in the per-sample records
(harness/evaluation/previews.py; read through harness/report/samples.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from markupsafe import escape

from harness.evaluation.previews import PREVIEW_KEY, PREVIEW_PASSES, palette_of
from harness.registry import REPORT_SECTIONS
from harness.report.model_table import model_table
from harness.report.plotting import family_colour, inline_svg, new_figure
from harness.report.samples import job_records
from harness.report.tables import models_by_family

LEGEND_LIMIT = 40  # classes named in the overlay's colour legend (ADE20K's 150 would drown it)


def per_class_table(rows: pd.DataFrame, summary: list[tuple[str, str]], class_metric: str, what: str) -> str | None:
    """Summary columns, then one column per class (``class_metric`` rows), inside a collapsed <details>."""
    part = rows[rows["metric"] == class_metric]
    if part.empty:
        return None
    classes = list(dict.fromkeys(p["class"] for p in part["params"]))
    values = {(str(m), f"class:{p['class']}"): float(v) for m, p, v in zip(part["model"], part["params"], part["value"])}
    for metric, _ in summary:
        for m, v in rows.loc[rows["metric"] == metric, ["model", "value"]].itertuples(index=False, name=None):
            values[(str(m), metric)] = float(v)
    columns = [*summary, *((f"class:{c}", c) for c in classes)]
    table = model_table(models_by_family(rows), columns, values)
    return (f"<details><summary>{escape(what)} of each of the {len(classes)} classes (click to open)</summary>"
            f"{table}</details>")


def things_stuff_by_family(rows: pd.DataFrame) -> str | None:
    """PQ of all classes, things and stuff: one bar per model (colour = family), each family's mean dashed."""
    groups = [("pq", "all"), ("pq_things", "things"), ("pq_stuff", "stuff")]
    values = {(str(m), metric): float(v) for m, metric, v in zip(rows["model"], rows["metric"], rows["value"])
              if metric in dict(groups)}
    models = [mf for mf in models_by_family(rows) if any((mf[0], g) in values for g, _ in groups)]
    if not models:
        return None
    figure, axes = new_figure(7.2, 3.2)
    width = 0.8 / len(models)
    hover = []
    for g, (metric, label) in enumerate(groups):
        for i, (model, family) in enumerate(models):
            if (model, metric) in values:
                bar = axes.bar(g - 0.4 + width * (i + 0.5), values[(model, metric)], width * 0.92,
                               color=family_colour(family), label=model if g == 0 else None)[0]
                hover.append((bar, f"{model} ({family}): PQ {label} {values[(model, metric)]:.4f}"))
        for family in dict.fromkeys(f for _, f in models):
            members = [i for i, (m, f) in enumerate(models) if f == family and (m, metric) in values]
            if len(members) > 1:  # a family of one: its mean is its bar
                mean = float(np.mean([values[(models[i][0], metric)] for i in members]))
                line = axes.plot([g - 0.4 + width * min(members), g - 0.4 + width * (max(members) + 1)], [mean, mean],
                                 "--", color="black", linewidth=1)[0]
                hover.append((line, f"{family} mean PQ {label}: {mean:.4f} ({len(members)} models)"))
    axes.set_xticks(range(len(groups)), [f"PQ {label}" for _, label in groups])
    axes.set_ylim(0, 1.15)  # headroom for the legend
    axes.set_yticks(np.linspace(0, 1, 6))
    axes.set_ylabel("PQ")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7, ncols=min(len(models), 4), loc="upper center")
    axes.set_title("panoptic quality, things vs stuff (bars: models, colour = family; dashed: family mean)")
    return inline_svg(figure, hover)


def _img(data: str | None, alt: str) -> str:
    if not data:
        return "<td>–</td>"
    return (f'<td><img src="data:image/png;base64,{data}" alt="{escape(alt)}" title="{escape(alt)}" '
            f'style="height:128px;image-rendering:pixelated"></td>')


def _legend(meta: dict, panoptic: bool) -> str:
    """Class names on their colours, as the evaluator coloured them (the job meta's colours, else the default)."""
    categories = meta.get("categories", [])
    names = meta.get("class_names") or [c.get("name", str(c.get("id"))) for c in categories]
    palette = palette_of(meta.get("class_colours") or [c.get("color") for c in categories])
    if not names or len(names) > LEGEND_LIMIT:
        return "<p class=\"sub\">Colours by class index; black: ignored / void.</p>"
    swatches = "".join(f'<span style="display:inline-block;margin-right:.8rem"><span style="display:inline-block;'
                       f'width:.9rem;height:.9rem;vertical-align:middle;background:rgb{tuple(palette[3 * i:3 * i + 3])}">'
                       f"</span> {escape(name)}</span>" for i, name in enumerate(names))
    black = "void and segment borders" if panoptic else "ignored pixels"
    return f'<p class="sub">{swatches}<span>black: {black}</span></p>'


def overlays(rows: pd.DataFrame, panoptic: bool = False) -> str:
    """For the first samples of the evaluated subset: the input, the ground truth and each model's prediction."""
    jobs = rows[["model", "family", "job_key"]].drop_duplicates("job_key")
    order = {model: i for i, (model, _) in enumerate(models_by_family(jobs))}
    previews: dict[tuple[str, str], dict[str, str]] = {}  # (model, sample id) -> preview
    sample_ids: list[str] = []
    models, meta = [], None
    for model, family, job_key in sorted(jobs.itertuples(index=False, name=None), key=lambda j: order[str(j[0])]):
        loaded = job_records(job_key)
        if loaded is None:
            continue
        state, job_meta = loaded
        meta = meta or job_meta
        models.append((str(model), str(family)))
        for pass_name in PREVIEW_PASSES:
            for sample_id, record in state.pass_records(pass_name):
                if PREVIEW_KEY in record:
                    previews[(str(model), sample_id)] = record[PREVIEW_KEY]
                    if sample_id not in sample_ids:
                        sample_ids.append(sample_id)
    if not sample_ids:
        return ("<p class=\"figure-error\">no previews: this report's folder holds no per-sample records with "
                "previews for this task (run with --log-samples, the default)</p>")
    head = "".join(f'<th class="text">{escape(model)} <span class="fam fam-{escape(family)}">{escape(family)}</span>'
                   f"</th>" for model, family in models)
    body = []
    for sample_id in sample_ids:
        first = next((previews[(m, sample_id)] for m, _ in models if (m, sample_id) in previews), {})
        cells = [_img(first.get("image"), f"{sample_id}: input"), _img(first.get("truth"), f"{sample_id}: ground truth")]
        cells += [_img(previews.get((model, sample_id), {}).get("prediction"), f"{sample_id}: {model}")
                  for model, _ in models]
        body.append(f'<tr data-sample="{escape(sample_id)}"><td class="text">{escape(sample_id)}</td>{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table class="overlays"><thead><tr><th class="text">sample</th><th class="text">image'
            f'</th><th class="text">ground truth</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
            f"{_legend(meta or {}, panoptic)}")


@REPORT_SECTIONS.register("segmentation")
def segmentation_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    sections = []
    table = per_class_table(task_rows, [("miou", "mIoU"), ("macc", "mAcc"), ("aacc", "aAcc")], "iou_class", "IoU")
    if table:
        sections.append(("Per-class IoU", table))
    sections.append(("Qualitative examples: input, ground truth and each model's prediction", overlays(task_rows)))
    return sections


@REPORT_SECTIONS.register("panoptic")
def panoptic_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    sections = []
    chart = things_stuff_by_family(task_rows)
    if chart:
        sections.append(("PQ of things and stuff by family", chart))
    table = per_class_table(task_rows, [("pq", "PQ"), ("pq_things", "PQ things"), ("pq_stuff", "PQ stuff")],
                            "pq_class", "PQ")
    if table:
        sections.append(("Per-class PQ", table))
    sections.append(("Qualitative examples: input, ground truth and each model's panoptic prediction",
                     overlays(task_rows, panoptic=True)))
    return sections
