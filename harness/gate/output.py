"""The gate's result in the CI's languages: console table, JUnit XML, GitHub step summary and annotations,
and an HTML fragment for the report's "Regression check" section. One row formatter feeds them all."""
from __future__ import annotations

import html
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping, TextIO

from harness.gate.compare import GateResult, Verdict

COLUMNS = ("model", "dataset", "task", "metric", "baseline", "new", "diff", "interval", "test", "p", "verdict")
MARK = {"pass": "pass", "regression": "REGRESSION", "improvement": "improvement", "inconclusive": "inconclusive",
        "not comparable": "NOT COMPARABLE", "failed": "FAILED", "new": "new", "not gated": "not gated"}


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4g}"


def cells(v: Verdict) -> dict[str, str]:
    """One verdict as display strings (shared by every output)."""
    interval = "–" if v.ci_low is None or v.ci_high is None else f"[{v.ci_low:+.4g}, {v.ci_high:+.4g}]"
    diff = _signed(v.diff) + (f" (×{v.ratio:.3g})" if v.ratio is not None else "")
    return {"model": v.model, "dataset": v.dataset, "task": v.task, "metric": v.label,
            "baseline": _number(v.baseline), "new": _number(v.new), "diff": diff, "interval": interval,
            "test": v.test or "–", "p": "–" if v.p_value is None else f"{v.p_value:.3g}",
            "verdict": MARK[v.status] + (f": {'; '.join(v.reasons)}" if v.reasons else "")
            + (f" [{v.model_change}]" if v.model_change and v.status != "pass" else "")}


def numbers(v: Verdict) -> str:
    """"0.98 → 0.95 (diff -0.03 [-0.05, -0.01], mcnemar-exact p=0.001)", shortened when nothing was tested."""
    row = cells(v)
    text = f"{row['baseline']} → {row['new']}"
    if v.diff is None:
        return text
    return text + f" (diff {row['diff']} {row['interval']}, {row['test']} p={row['p']})".replace(" –,", ",")


def headline(result: GateResult) -> str:
    code = result.exit_code
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("pass", "improvement", "inconclusive", "regression",
                                                          "failed", "not comparable") if result.count(s))
    state = {0: "passed", 1: "FAILED (regression)", 2: "FAILED (baseline not comparable)"}[code]
    return f"Regression gate {state} — {len(result.gated)} gated metrics: {counts or 'none'} (exit {code})"


def console_table(result: GateResult, include_ungated: bool = False) -> str:
    rows = [cells(v) for v in result.verdicts if v.gated or include_ungated]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    lines += [f"{j.model} · {j.dataset} · {j.task}: {j.summary}" for j in result.jobs]
    lines.append(headline(result))
    return "\n".join(lines)


def markdown(result: GateResult) -> str:
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[result.exit_code]
    out = [f"## {icon} {headline(result)}", "", "| " + " | ".join(COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
    for v in result.gated:
        row = cells(v)
        out.append("| " + " | ".join(row[c].replace("|", "\\|") for c in COLUMNS) + " |")
    out += ["", "**What changed per job**", ""]
    out += [f"- {j.model} · {j.dataset} · {j.task}: {j.summary}" for j in result.jobs]
    return "\n".join(out) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(result: GateResult) -> list[str]:
    """GitHub workflow commands: ``::error`` for regressions, failures and non-comparable metrics,
    ``::warning`` for inconclusive ones."""
    lines = []
    for v in result.gated:
        level = {"regression": "error", "failed": "error", "not comparable": "error",
                 "inconclusive": "warning"}.get(v.status)
        if level is None:
            continue
        title = _escape_property(f"{MARK[v.status]}: {v.model} {v.label}")
        message = f"{v.where} {v.label}: {numbers(v)} {cells(v)['verdict']}"
        lines.append(f"::{level} title={title}::{_escape_data(message)}")
    return lines


def junit_xml(result: GateResult) -> str:
    """One test case per gated metric; a regression or a failed job is a <failure>, a non-comparable
    metric an <error>."""
    gated = result.gated
    failures = sum(v.status in ("regression", "failed") for v in gated)
    errors = sum(v.status == "not comparable" for v in gated)
    attrs = {"name": "visionbench gate", "tests": str(len(gated)), "failures": str(failures),
             "errors": str(errors), "skipped": "0", "time": "0"}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    for v in gated:
        row = cells(v)
        case = ET.SubElement(suite, "testcase", {"classname": f"{v.model}.{v.dataset}.{v.task}",
                                                 "name": v.label, "time": "0"})
        summary = numbers(v)
        if v.status in ("regression", "failed", "not comparable"):
            tag = "error" if v.status == "not comparable" else "failure"
            element = ET.SubElement(case, tag, {"type": v.status, "message": f"{row['verdict']} {summary}"})
            element.text = "\n".join(v.reasons) or row["verdict"]
        else:
            ET.SubElement(case, "system-out").text = f"{row['verdict']} {summary}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def html_fragment(result: GateResult) -> str:
    """The report's "Regression check" section (every value escaped)."""
    status = {0: "pass", 1: "regression", 2: "not-comparable"}[result.exit_code]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for v in result.gated:
        row = cells(v)
        tds = "".join(f"<td>{html.escape(row[c])}</td>" for c in COLUMNS)
        body.append(f'<tr class="gate-{html.escape(v.status.replace(" ", "-"))}">{tds}</tr>')
    changes = "".join(f"<li>{html.escape(f'{j.model} · {j.dataset} · {j.task}: {j.summary}')}</li>"
                      for j in result.jobs)
    return (f'<section class="regression-check gate-{status}"><h2>Regression check</h2>'
            f"<p>{html.escape(headline(result))}</p>"
            f"<p>Baseline: <code>{html.escape(result.baseline)}</code></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<ul>{changes}</ul></section>")


def junit_refusal(message: str) -> str:
    """JUnit XML for a gate that could not compare at all (a corrupt baseline, another suite): one <error>."""
    attrs = {"name": "visionbench gate", "tests": "1", "failures": "0", "errors": "1", "skipped": "0", "time": "0"}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    case = ET.SubElement(suite, "testcase", {"classname": "visionbench.gate", "name": "baseline", "time": "0"})
    ET.SubElement(case, "error", {"type": "not comparable", "message": message}).text = message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit_refusal(path: Path, message: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_refusal(message), encoding="utf-8")


def write_junit(result: GateResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(result), encoding="utf-8")


def emit(result: GateResult, stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> None:
    """Console table and annotations to ``stream``; Markdown appended to ``$GITHUB_STEP_SUMMARY`` when set."""
    stream = stream or sys.stdout
    env = os.environ if env is None else env
    print(console_table(result), file=stream)
    for line in annotations(result):
        print(line, file=stream)
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(markdown(result))
