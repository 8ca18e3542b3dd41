"""Report section of the occlusion task: accuracy vs drop fraction per model (coloured by family), one chart
per variant, each curve starting at (0, clean accuracy); and the occluded images themselves, for the first
samples of the evaluated subset at three fractions, as the model saw them (the evaluator keeps them)."""
from __future__ import annotations

import pandas as pd
from markupsafe import escape

from harness.registry import REPORT_SECTIONS
from harness.report.plotting import line_chart
from harness.report.samples import job_records

VARIANT_TITLES = {"random": "random patch drop (aligned grid)", "offset": "random patch drop (grid offset by half "
                  "a patch)", "salient": "salient patches first", "nonsalient": "non-salient patches first",
                  "pixels": "random pixel masking"}


def curves(task_rows: pd.DataFrame, variant: str) -> dict[str, tuple[str, list[tuple[float, float]]]]:
    """model -> (family, [(fraction, accuracy), ...]) including (0, clean accuracy)."""
    series = {}
    for model, rows in task_rows.groupby("model", sort=True):
        points = [(float(p["fraction"]), float(v)) for m, p, v in zip(rows["metric"], rows["params"], rows["value"])
                  if m == "occlusion_acc" and p.get("variant") == variant]
        clean = rows.loc[rows["metric"] == "clean_acc", "value"]
        if points:
            series[str(model)] = (str(rows["family"].iloc[0]),
                                  sorted(points + ([(0.0, float(clean.iloc[0]))] if len(clean) else [])))
    return series


def variants_of(task_rows: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(p.get("variant") for m, p in zip(task_rows["metric"], task_rows["params"])
                              if m == "occlusion_auc"))


def examples(task_rows: pd.DataFrame) -> str:
    """The occluded inputs of the first model with previews: a row per sample and variant, clean then 3 fractions."""
    for job_key in dict.fromkeys(task_rows["job_key"]):
        loaded = job_records(job_key)
        if loaded is None:
            continue
        state, _ = loaded
        previews = [(sample_id, r["preview"]) for sample_id, r in state.pass_records("main") if "preview" in r]
        if previews:
            model = task_rows.loc[task_rows["job_key"] == job_key, "model"].iloc[0]
            return _examples_table(previews, str(model))
    return ('<p class="figure-error">no occluded examples: this report\'s folder holds no per-sample records for '
            "this task (run with --log-samples, the default)</p>")


def _img(data: str, alt: str) -> str:
    return (f'<td><img src="data:image/png;base64,{data}" alt="{escape(alt)}" title="{escape(alt)}" '
            f'style="height:96px;image-rendering:pixelated"></td>')


def _examples_table(previews: list[tuple[str, dict]], model: str) -> str:
    body = []
    fractions: list[str] = []
    for sample_id, preview in previews:
        for variant, by_fraction in preview.items():
            if variant == "clean":
                continue
            fractions = fractions or list(by_fraction)
            cells = [_img(preview["clean"], f"{sample_id}: clean")]
            cells += [_img(by_fraction[f], f"{sample_id}: {variant}, fraction {f}") for f in by_fraction]
            body.append(f'<tr data-sample="{escape(sample_id)}" data-variant="{escape(variant)}"><td class="text">'
                        f'{escape(sample_id)}</td><td class="text">{escape(VARIANT_TITLES.get(variant, variant))}'
                        f'</td>{"".join(cells)}</tr>')
    head = "".join(f"<th>fraction {escape(f)}</th>" for f in fractions)
    return (f'<p class="sub">As {escape(model)} saw them (the same cells are dropped for every model at a given sample, '
            f'fraction and seed).</p><div class="scroll"><table class="occlusion-examples"><thead><tr>'
            f'<th class="text">sample</th><th class="text">variant</th><th>clean</th>{head}</tr></thead><tbody>'
            f'{"".join(body)}</tbody></table></div>')


@REPORT_SECTIONS.register("occlusion")
def occlusion_sections(task_rows: pd.DataFrame, all_rows: pd.DataFrame) -> list[tuple[str, str]]:
    sections = []
    for variant in variants_of(task_rows):
        chart = line_chart(curves(task_rows, variant), "fraction dropped", "top-1", f"top-1 vs fraction dropped: "
                           f"{VARIANT_TITLES.get(variant, variant)}", y_range=(0.0, 1.0))
        if chart:
            sections.append((f"Occlusion: {VARIANT_TITLES.get(variant, variant)}", chart))
    sections.append(("Occluded examples", examples(task_rows)))
    return sections
