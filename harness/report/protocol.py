"""The evaluation protocol behind a table, read from what each job stored: dataset and subset, n, the task's
own facts (Task.protocol_facts: an attack's steps and eps units, corruption severities, ...), the metrics'
declared protocol text, precision, device.

Facts that differ between the models of one table are listed, never averaged away.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

import harness.plugins  # noqa: F401  (registers the tasks, whose protocol facts a table lists)
from harness.metrics import METRIC_INFO, metric_info
from harness.registry import TASKS


def _distinct(values) -> str:
    seen = list(dict.fromkeys(str(v) for v in values if v is not None and v == v and str(v) != ""))
    return ", ".join(seen) if seen else ""


def protocol_facts(part: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, value) pairs for one table's rows (one task on one dataset)."""
    provenance = [json.loads(p) for p in part.drop_duplicates("job_key")["provenance"] if isinstance(p, str)]
    task = next((p.get("task") for p in provenance if p.get("task")), {}) or {}
    params = task.get("params") or {}
    samples = [p.get("samples") or p.get("dataset") or {} for p in provenance]
    facts: list[tuple[str, str]] = []
    dataset = _distinct(f"{s.get('dataset', '')} ({s.get('dataset_kind', '?')}, split {s.get('split', '-')})"
                        for s in samples) or _distinct(part["dataset"])
    facts.append(("dataset", dataset))
    subset = _distinct(s.get("subset") for s in samples)
    size = _distinct(s.get("dataset_size") for s in samples)
    facts.append(("subset", subset or (f"all {size} samples" if size else "whole split")))
    ns = part.loc[part["headline"].fillna(False).astype(bool), "n"].dropna() if "headline" in part else part["n"]
    facts.append(("n", _distinct(sorted({int(n) for n in ns})) or "–"))
    facts.append(("task", f"{task.get('kind', part['task_kind'].iloc[0])} v{task.get('version', '?')}"
                          f" ({part['task'].iloc[0]})"))
    task_class = TASKS.get(task["kind"]) if task.get("kind") in TASKS else None
    if task_class is not None:  # what only the task knows: attack settings, corruptions and severities, ...
        facts += task_class.protocol_facts(params, [p.get("job_meta") or {} for p in provenance])
    defined = [f"{name}: {metric_info(name).protocol}" for name in dict.fromkeys(part["metric"])
               if name in METRIC_INFO and metric_info(name).protocol]
    if defined:
        facts.append(("metrics", "; ".join(defined)))
    facts.append(("precision", _distinct(part["precision"]) or "fp32"))
    facts.append(("device", _distinct(part["device"]) or "–"))
    batch = _distinct(p.get("batch_size") for p in provenance)
    facts.append(("seed / batch size", f"{_distinct(part['seed']) or '–'} / {batch or '–'}"))
    limit = _distinct(p.get("limit") for p in provenance)
    if limit:
        facts.append(("--limit", limit))
    return facts


def suite_protocol(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The facts shared by a suite's tables (for the index and history pages)."""
    datasets = _distinct(rows["dataset"])
    tasks = _distinct(rows["task"])
    ns = rows.loc[rows["headline"].fillna(False).astype(bool), "n"].dropna() if "headline" in rows else rows["n"]
    return [("datasets", datasets or "–"), ("tasks", tasks or "–"),
            ("n", _distinct(sorted({int(n) for n in ns})) or "–"),
            ("precision", _distinct(rows["precision"]) or "–"), ("device", _distinct(rows["device"]) or "–")]
