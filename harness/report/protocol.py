"""The evaluation protocol behind a table, read from what each job stored: dataset and subset, n, attack
steps and restarts, eps and its units, corruption severities, precision, device.

Facts that differ between the models of one table are listed, never averaged away.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from harness.report.tables import format_param

EPS_UNITS = "pixel scale: images in [0, 1], eps shown as k/255"


def _distinct(values) -> str:
    seen = list(dict.fromkeys(str(v) for v in values if v is not None and v == v and str(v) != ""))
    return ", ".join(seen) if seen else ""


def _listing(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return ", ".join(format_param(v) for v in values)
    return format_param(values)


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
    if "eps" in params:
        facts.append(("attack", ", ".join(x for x in [
            f"{params.get('tier')} tier" if params.get("tier") else "",
            f"norm {params.get('norm', '?')}", f"steps {params.get('steps', '?')}",
            f"restarts {params['restarts']}" if "restarts" in params else "",
            f"random start {'yes' if params.get('random_start') else 'no'}" if "random_start" in params else "",
            f"black-box check on {params.get('blackbox_n')} samples x {params.get('blackbox_queries')} queries"
            if params.get("blackbox_n") else "no black-box check"] if x)))
        units = EPS_UNITS if params.get("norm") == "Linf" else "pixel scale: images in [0, 1]"
        facts.append(("eps", f"{_listing(params['eps'])} ({units})"))
        sizes = _distinct(p.get("job_meta", {}).get("attack_size") for p in provenance)
        if sizes:
            facts.append(("attack resolution", sizes))
    if "severities" in params:
        corruptions = params.get("corruptions") or []
        facts.append(("corruptions", f"{len(corruptions)} ({', '.join(corruptions)})" if corruptions else "–"))
        facts.append(("severities", _listing(params["severities"])))
        reference = params.get("reference_model") or params.get("reference")
        facts.append(("corruption mode", f"{params.get('mode', '?')}" + (f", CE relative to {reference}"
                                                                          if reference else "")))
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
