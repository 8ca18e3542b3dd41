"""Synthetic result stores for the publishing tests and benchmark, written through the store's own API.

Each suite folder holds ``runs`` runs of the same jobs (the values drift a little from run to run): a
classification task (top-1/top-5 with Wilson intervals from seeded success counts), a PGD task (robust
accuracy per eps, clean accuracy, sanity flags; one model flagged unreliable), a corruption task whose mCE
is derived against a reference model, and a latency task (parameters, FLOPs, timings). One model's
weights are random-init, one job fails in the last run, and one job stores no top-5 (a partial result).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import harness.plugins  # noqa: F401  (task classes and metric declarations)
from harness.metrics import Metric, proportion
from harness.registry import TASKS
from harness.store import JobRecord, ResultStore

FAMILIES = ("cnn", "transformer", "hybrid")
EPS = (2 / 255, 8 / 255)
CORRUPTIONS = ("gaussian_noise", "fog")
SEVERITIES = (1, 3)


@dataclass
class SyntheticSuite:
    name: str
    folder: Path
    tasks: list  # Task objects as the suite defines them (for the derived metrics)
    models: list[str]


def model_names(count: int) -> list[str]:
    return [f"{['resnet', 'vit', 'coatnet'][i % 3]}_{i:02d}" for i in range(count)]


def suite_tasks(reference: str) -> list:
    def make(kind: str, label: str, **params):
        cls = TASKS.get(kind)
        return cls(cls.Params(**params), label=label)

    return [make("classification", "classification", topk=[1, 5]),
            make("pgd", "pgd-linf", norm="Linf", eps=list(EPS), steps=10, n=200),
            make("corruption", "corruptions", corruptions=list(CORRUPTIONS), severities=list(SEVERITIES),
                 reference_model=reference, n=100),
            make("latency", "latency")]


def _metrics(task: str, skill: float, rng: np.random.Generator, n: int, partial: bool) -> list[Metric]:
    def prop(name: str, p: float, size: int, **params) -> Metric:
        return proportion(name, int(rng.binomial(size, float(np.clip(p, 0, 1)))), size, **params)

    if task == "classification":
        out = [prop("top1", skill, n)]
        return out if partial else out + [prop("top5", min(1.0, skill + 0.08), n)]
    if task == "pgd-linf":
        out = [prop("robust_acc", skill * (1 - 10 * eps), 200, eps=eps, norm="Linf", attack_size="32x32") for eps in EPS]
        return out + [prop("clean_acc", skill, 200, attack_size="32x32")]
    if task == "corruptions":
        out = [prop("clean_acc", skill, 100, mode="generated")]
        cells = [prop("corruption_acc", skill - 0.1 * s, 100, corruption=c, severity=s, mode="generated")
                 for c in CORRUPTIONS for s in SEVERITIES]
        mean = float(np.mean([m.value for m in cells]))
        return out + cells + [Metric("mean_corruption_acc", mean, 100, {"mode": "generated"})]
    params_m = float(rng.uniform(0.2, 300))
    return [Metric("params_m", params_m, 1, unit="M"), Metric("gflops", params_m / 10, 1, unit="GFLOP"),
            Metric("latency_ms_mean", float(rng.uniform(1, 50)), 200, {"batch_size": 1}, unit="ms"),
            Metric("throughput_img_s", float(rng.uniform(10, 900)), 50, {"batch_size": 8}, unit="img/s")]


def write_suite(root: Path, name: str, models: list[str], runs: int, seed: int = 0) -> SyntheticSuite:
    """One run folder ``root/name`` holding ``runs`` runs of every model x task job."""
    rng = np.random.default_rng(seed)
    tasks = suite_tasks(reference=models[0])
    store = ResultStore(root / name / "results.sqlite")
    skills = {m: float(rng.uniform(0.55, 0.97)) for m in models}
    flagged, random_init, failing, partial = models[-1], models[1 % len(models)], models[2 % len(models)], models[0]
    for run in range(runs):
        run_id = store.start_run(suite=name, suite_path=f"suites/{name}.yaml", suite_hash="synthetic",
                                 git_commit=f"{run:040x}", harness_version="0.1.0", world_size=1,
                                 argv=f"--suite {name} (synthetic run {run})")
        for index, model in enumerate(models):
            family = FAMILIES[index % 3]
            for task in tasks:
                columns = {"suite": name, "suite_version": "1", "suite_hash": "synthetic", "model": model,
                           "family": family, "arch": model.split("_")[0], "model_tag": None,
                           "weights": "random-init" if model == random_init else "zoo",
                           "weights_sha256": None if model == random_init else f"{index:064x}",
                           "dataset": "digits-test", "split": "test", "task": task.label, "task_kind": task.kind,
                           "seed": 0, "device": "AMD EPYC", "precision": "fp32", "world_size": 1,
                           "torch_version": "2.14.1", "timm_version": "1.0.31", "harness_version": "0.1.0",
                           "git_commit": f"{run:040x}"}
                provenance = {"task": task.fingerprint(), "batch_size": 100, "limit": None,
                              "samples": {"dataset": "digits-test", "dataset_kind": "digits", "split": "test",
                                          "dataset_size": 450},
                              "model": {"model_source": "zoo", "num_params": int(1e5 * (index + 1)),
                                        "preprocess": {"input_size": [3, 32, 32], "interpolation": "bilinear"}}}
                key = f"{name}-{model}-{task.label}"
                finished_at = f"2026-01-{run + 1:02d}T{index % 24:02d}:{len(task.label) % 60:02d}:00+0000"
                if model == failing and task.label == "classification" and run == runs - 1:
                    store.save(JobRecord(key, columns, "failed", error="RuntimeError: out of memory",
                                         provenance=provenance), run_id, finished_at)
                    continue
                skill = skills[model] + 0.01 * run
                metrics = _metrics(task.label, skill, rng, 450, partial=model == partial)
                if task.label == "pgd-linf":
                    unreliable = model == flagged
                    metrics += [Metric("flag_masked_gradients", float(unreliable), 200),
                                Metric("robust_reliable", float(not unreliable), 200)]
                store.save(JobRecord(key, columns, "ok", metrics, seconds=1.0, provenance=provenance),
                           run_id, finished_at)
        store.finish_run(run_id)
    store.close()
    return SyntheticSuite(name, root / name, tasks, models)


def write_reports(root: Path, models: int, suites: int, runs: int) -> list[SyntheticSuite]:
    names = model_names(models)
    return [write_suite(Path(root), f"suite{s}", names, runs, seed=s) for s in range(suites)]

