"""Run directories for the gate's tests, made of real computations on sklearn's digits.

A linear classifier (logistic regression on standardised pixels) plays the model: its coefficients are
the weights (sha256 recorded), the standardisation mean/std its preprocessing. Jobs write what the runner
writes: ``results.json`` rows and ``samples/<job_key>.jsonl.gz`` per-sample records.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from harness.evaluation.state import EvalState, write_records
from harness.metrics import Metric, proportion

_DIGITS = load_digits()
_ORDER = np.random.default_rng(0).permutation(len(_DIGITS.target))
TRAIN, TEST = _ORDER[:1347], _ORDER[1347:]  # 450 test samples, a seeded draw


@dataclass(frozen=True)
class LinearModel:
    name: str
    coef: np.ndarray
    intercept: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        return ((pixels - self.mean) / self.std) @ self.coef.T + self.intercept

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.coef.tobytes() + self.intercept.tobytes()).hexdigest()

    def preprocess(self) -> dict[str, Any]:
        return {"input_size": [1, 8, 8], "interpolation": "none", "crop_pct": 1.0, "crop_mode": "center",
                "mean": [round(float(self.mean.mean()), 6)], "std": [round(float(self.std.mean()), 6)]}


def train(name: str, n_train: int = len(TRAIN), c: float = 1.0) -> LinearModel:
    pixels, labels = _DIGITS.data[TRAIN[:n_train]], _DIGITS.target[TRAIN[:n_train]]
    mean, std = pixels.mean(axis=0), pixels.std(axis=0) + 1.0
    with threadpool_limits(1):  # threaded BLAS on a shared 2-core machine is 100x slower here
        fit = LogisticRegression(C=c, max_iter=3000).fit((pixels - mean) / std, labels)
    return LinearModel(name, fit.coef_, fit.intercept_, mean, std)


def perturbed(model: LinearModel, scale: float, seed: int = 0) -> LinearModel:
    """Weights plus Gaussian noise of ``scale`` times their standard deviation."""
    noise = np.random.default_rng(seed).normal(0, scale * model.coef.std(), model.coef.shape)
    return replace(model, coef=model.coef + noise)


def evaluated_ids(subset: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    rows = TEST if subset is None else TEST[subset]
    return [f"digits/{i}" for i in rows], rows


# --- jobs ------------------------------------------------------------------------------------------------------
@dataclass
class Job:
    model: LinearModel
    task: str
    task_kind: str
    task_params: dict[str, Any]
    state: EvalState
    metrics: list[Metric]
    ids: list[str]
    dataset: str = "digits-test"
    meta: dict[str, Any] = field(default_factory=dict)  # what the job's evaluator is built from


def classification(model: LinearModel, subset: np.ndarray | None = None) -> Job:
    ids, rows = evaluated_ids(subset)
    scores = model.scores(_DIGITS.data[rows])
    labels = _DIGITS.target[rows]
    top = np.argsort(-scores, axis=1)[:, :5]
    state = EvalState()
    for sid, label, best in zip(ids, labels, top):
        state.add_record(sid, "main", {"label": int(label), "topk": best.tolist(), "correct": bool(best[0] == label)})
    metrics = [proportion(f"top{k}", int((top[:, :k] == labels[:, None]).any(axis=1).sum()), len(ids))
               for k in (1, 5)]
    return Job(model, "classification", "classification", {"topk": [1, 5]}, state, metrics, ids)


def _noisy_correct(model: LinearModel, rows: np.ndarray, amplitude: float, seed: int) -> np.ndarray:
    """Correctness under a seeded sign perturbation of ``amplitude`` (pixels span 0..16)."""
    pixels = _DIGITS.data[rows]
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], pixels.shape)
    return model.scores(np.clip(pixels + amplitude * 16 * signs, 0, 16)).argmax(axis=1) == _DIGITS.target[rows]


def pgd_like(model: LinearModel, eps: list[float], subset: np.ndarray | None = None) -> Job:
    """An attack-shaped job (robust accuracy per eps, clean accuracy) from a seeded sign perturbation."""
    ids, rows = evaluated_ids(subset)
    clean = model.scores(_DIGITS.data[rows]).argmax(axis=1) == _DIGITS.target[rows]
    robust = {f"Linf:{e!r}": _noisy_correct(model, rows, e, 1) & clean for e in eps}
    state = EvalState()
    for i, sid in enumerate(ids):
        state.add_record(sid, "main", {"clean": bool(clean[i]), "robust": {k: bool(v[i]) for k, v in robust.items()}})
    metrics = [proportion("robust_acc", int(robust[f"Linf:{e!r}"].sum()), len(ids), norm="Linf", eps=e) for e in eps]
    metrics.append(proportion("clean_acc", int(clean.sum()), len(ids)))
    return Job(model, "pgd", "pgd", {"norm": "Linf", "eps": eps, "steps": 10}, state, metrics, ids)


def corruption(model: LinearModel, severities: list[int]) -> Job:
    ids, rows = evaluated_ids()
    state = EvalState()
    clean = model.scores(_DIGITS.data[rows]).argmax(axis=1) == _DIGITS.target[rows]
    metrics = [proportion("clean_acc", int(clean.sum()), len(ids), mode="generated")]
    for sid, ok in zip(ids, clean):
        state.add_record(sid, "clean", {"correct": bool(ok)})
    for severity in severities:
        correct = _noisy_correct(model, rows, 0.1 * severity, 100 + severity)
        for sid, ok in zip(ids, correct):
            state.add_record(sid, f"gaussian_noise/{severity}", {"correct": bool(ok)})
        metrics.append(proportion("corruption_acc", int(correct.sum()), len(ids), mode="generated",
                                  corruption="gaussian_noise", severity=severity))
    params = {"mode": "generated", "corruptions": ["gaussian_noise"], "severities": severities}
    return Job(model, "corruption", "corruption", params, state, metrics, ids)


# metric metadata the runner takes from harness.metrics declarations
KINDS = {"top1": ("higher", "proportion", True), "top5": ("higher", "proportion", True),
         "robust_acc": ("higher", "proportion", True), "clean_acc": ("higher", "proportion", True),
         "corruption_acc": ("higher", "proportion", True), "miou": ("higher", "dataset", True),
         "map_50": ("higher", "dataset", True), "latency_ms_p50": ("lower", "timing", True)}


def write_run(run_dir: Path, jobs: list[Job], subset_label: str | None = None) -> Path:
    """``results.json`` + per-sample records, as the runner writes them."""
    rows = []
    for number, job in enumerate(jobs):
        key = f"job{number:02d}-{job.model.name}-{job.task}"
        write_records(run_dir / "samples" / f"{key}.jsonl.gz", job.state, meta=job.meta, job_key=key)
        ids_hash = hashlib.sha256("\n".join(job.ids).encode()).hexdigest()
        for metric in job.metrics:
            direction, kind, headline = KINDS[metric.name]
            rows.append({
                "job_key": key, "status": "ok", "suite": "gate-test", "model": job.model.name, "family": "cnn",
                "arch": "linear", "model_tag": "", "weights": "memory", "weights_sha256": job.model.sha256,
                "dataset": job.dataset, "split": "test", "task": job.task, "task_kind": job.task_kind, "seed": 0,
                "device": "cpu", "precision": "fp32", "metric": metric.name, "params": metric.params,
                "value": metric.value, "n": metric.n, "ci_low": metric.ci_low, "ci_high": metric.ci_high,
                "unit": metric.unit, "direction": direction, "headline": headline, "metric_kind": kind,
                "world_size": 1, "derived": False,
                "provenance": {
                    "task": {"kind": job.task_kind, "label": job.task, "params": job.task_params},
                    "dataset": {"dataset": job.dataset, "dataset_kind": "digits", "split": "test",
                                "dataset_size": len(job.ids), "subset": subset_label, "root": str(run_dir)},
                    "dataset_fingerprint": "digits-" + hashlib.sha256(_DIGITS.data.tobytes()).hexdigest()[:16],
                    "sample_ids_sha256": ids_hash,
                    "model": {"weights_sha256": job.model.sha256, "arch": "linear",
                              "preprocess": job.model.preprocess()},
                    "env": {"device": "cpu", "python": "3", "torch": "2", "git_commit": "abc"},
                },
            })
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(rows), encoding="utf-8")
    return run_dir
