"""Plans a suite's jobs (model x dataset x task), runs them with failure isolation and caching,
stores every number with its provenance, and renders the report."""
from __future__ import annotations

import fnmatch
import random
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.data.base import ImageSource
from harness.env import environment, resolve_device
from harness.metrics import Metric
from harness.models.checkpoint import file_sha256
from harness.models.wrapper import LoadedModel
from harness.registry import ZOO_MODELS
from harness.schema import SuiteError
from harness.store import JobRecord, ResultStore
from harness.specs import DatasetSpec, ModelSpec, stable_hash
from harness.suite import Suite, load_suite
from harness.tasks.base import JobContext, Task, derived_rows

REPORTS_DIR = Path("reports")


@dataclass
class RunOptions:
    models: list[str] | None = None  # fnmatch patterns over the suite's model names
    limit: int | None = None
    device: str | None = None
    batch_size: int | None = None
    seed: int | None = None
    workers: int | None = None
    out: Path | None = None
    data_root: str | None = None
    rerun: bool = False  # ignore cached results
    progress: bool = True
    report: bool = True


@dataclass
class Job:
    model: ModelSpec
    dataset: DatasetSpec
    task: Task
    key: str = ""

    @property
    def title(self) -> str:
        return f"{self.model.name} x {self.dataset.name} x {self.task.label}"


@dataclass
class RunOutcome:
    frame: pd.DataFrame
    out_dir: Path
    ran: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plan_jobs(suite: Suite, patterns: list[str] | None) -> list[Job]:
    """Accuracy jobs first, grouped by model so each model loads once; performance tasks last."""
    models = suite.spec.models
    if patterns:
        models = [m for m in models if any(fnmatch.fnmatchcase(m.name, p) for p in patterns)]
        if not models:
            raise SuiteError(f"{suite.path}: models: --models {' '.join(patterns)} matches none of "
                             f"{', '.join(m.name for m in suite.spec.models)}")
    jobs = []
    for performance in (False, True):
        for model in models:
            for task_spec, task in zip(suite.spec.tasks, suite.tasks):
                if task.performance != performance or not _selected(model.name, task_spec.models):
                    continue
                for data in suite.spec.datasets:
                    if _selected(data.name, task_spec.datasets):
                        jobs.append(Job(model, data, task))
    return jobs


def _selected(name: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _weights_identity(model: ModelSpec) -> str | None:
    """A cheap weights identity known before loading, so cached jobs never load their model."""
    if model.source == "zoo":
        return file_sha256(ZOO_MODELS.get(model.architecture).weights_file)
    if model.checkpoint is not None:
        return file_sha256(model.checkpoint)
    return None


def run_suite(suite: str | Path | Suite, **overrides: Any) -> RunOutcome:
    options = RunOptions(**overrides)
    if not isinstance(suite, Suite):
        suite = load_suite(str(suite), data_root=options.data_root)
    defaults = suite.spec.defaults
    seed = options.seed if options.seed is not None else defaults.seed
    limit = options.limit if options.limit is not None else defaults.limit
    batch_size = options.batch_size or defaults.batch_size
    workers = options.workers if options.workers is not None else defaults.workers
    try:
        device = resolve_device(options.device or defaults.device)
    except ValueError as exc:
        raise SuiteError(f"{suite.path}: defaults.device: {exc}") from None
    out_dir = Path(options.out) if options.out else REPORTS_DIR / suite.name
    store = ResultStore(out_dir / "results.sqlite")
    env = environment(device)
    jobs = plan_jobs(suite, options.models)
    weights_ids = {m.name: _weights_identity(m) for m in {j.model.name: j.model for j in jobs}.values()}
    for job in jobs:
        job.key = stable_hash({
            "model": asdict(job.model), "weights": weights_ids[job.model.name], "dataset": asdict(job.dataset),
            "task": job.task.fingerprint(), "seed": seed, "limit": limit, "device": device.type,
            "batch_size": batch_size if job.task.batch_size_matters else None,
        })
    finished = set() if options.rerun else store.finished_keys()
    outcome = RunOutcome(frame=pd.DataFrame(), out_dir=out_dir)
    base_columns = {"suite": suite.name, "suite_version": str(suite.spec.version), "suite_hash": suite.config_hash(),
                    "seed": seed, "device": env["device_name"], "precision": "fp32",
                    "torch_version": env["torch_version"], "timm_version": env["timm_version"],
                    "harness_version": env["harness_version"], "git_commit": env["git_commit"]}
    loaded: dict[str, LoadedModel | BaseException] = {}
    sources: dict[str, ImageSource | BaseException] = {}
    bar = tqdm(jobs, desc=suite.name, unit="job", disable=not options.progress)
    try:
        for job in bar:
            bar.set_postfix_str(job.title, refresh=False)
            if job.key in finished:
                outcome.cached += 1
                continue
            _release_other_models(loaded, job.model.name)
            record = _run_job(job, suite, base_columns, env, loaded, sources, device, batch_size, workers, seed,
                              limit, out_dir, options.progress)
            store.save(record)
            outcome.ran += 1
            if record.status != "ok":
                outcome.failed.append(f"{job.title}: {record.error}")
                bar.write(f"FAILED {job.title}: {record.error}")
    finally:
        bar.close()
        outcome.frame = store.frame(job.key for job in jobs)
        store.close()
    outcome.frame = with_derived_metrics(outcome.frame, suite.tasks)
    if options.report:
        from harness.report.render import write_report

        write_report(outcome.frame, out_dir, suite)
    return outcome


def with_derived_metrics(frame: pd.DataFrame, tasks: list[Task]) -> pd.DataFrame:
    """Append each task's cross-job metrics (computed fresh from this run's rows)."""
    frame = frame.assign(derived=False)
    ok = frame[(frame["status"] == "ok") & frame["metric"].notna()]
    extra = [derived_rows(pairs) for task in tasks if (pairs := task.derive(ok[ok["task"] == task.label]))]
    return pd.concat([frame, *extra], ignore_index=True) if extra else frame


def _release_other_models(loaded: dict[str, Any], keep: str) -> None:
    for name in [n for n in loaded if n != keep]:
        del loaded[name]


def _load_model_once(job: Job, loaded: dict[str, Any], device: torch.device) -> LoadedModel:
    from harness.models.loaders import load_model

    if job.model.name not in loaded:
        try:
            loaded[job.model.name] = load_model(job.model).to_device(device)
        except Exception as exc:  # noqa: BLE001 - recorded as the job's failure
            loaded[job.model.name] = exc
    model = loaded[job.model.name]
    if isinstance(model, BaseException):
        raise model
    return model


def _source_once(spec: DatasetSpec, sources: dict[str, Any], limit: int | None) -> ImageSource:
    from harness.data.sources import build_source

    if spec.name not in sources:
        try:
            sources[spec.name] = build_source(spec, limit)
        except Exception as exc:  # noqa: BLE001
            sources[spec.name] = exc
    source = sources[spec.name]
    if isinstance(source, BaseException):
        raise source
    return source


def _run_job(job: Job, suite: Suite, base_columns: dict[str, Any], env: dict[str, Any], loaded: dict[str, Any],
             sources: dict[str, Any], device: torch.device, batch_size: int, workers: int, seed: int,
             limit: int | None, out_dir: Path, progress: bool) -> JobRecord:
    started = time.perf_counter()
    columns = {**base_columns, "model": job.model.name, "dataset": job.dataset.name, "split": job.dataset.split,
               "task": job.task.label, "task_kind": job.task.kind, "family": job.model.family,
               "arch": job.model.architecture, "precision": getattr(job.task.params, "precision", "fp32")}
    provenance: dict[str, Any] = {"env": env, "task": job.task.fingerprint(), "limit": limit,
                                  "batch_size": batch_size, "dataset_spec": asdict(job.dataset)}
    state_dir = out_dir / "partial" / job.key
    try:
        model = _load_model_once(job, loaded, device)
        columns.update({"family": model.family, "model_tag": model.tag, "weights": model.weights,
                        "weights_sha256": model.weights_sha256})
        provenance["model"] = model.provenance()
        source = _source_once(job.dataset, sources, limit)
        provenance["dataset"] = source.describe()
        seed_everything(seed)
        ctx = JobContext(model=model, source=source, device=device, batch_size=batch_size, seed=seed,
                         state_dir=state_dir, workers=workers, skip_corrupt=job.dataset.on_corrupt == "skip",
                         show_progress=progress)
        metrics = job.task.run(ctx)
        if ctx.skipped:  # undecodable images left out under on_corrupt: skip
            metrics.append(Metric("skipped_corrupt", float(len(ctx.skipped)), len(source)))
        shutil.rmtree(state_dir, ignore_errors=True)
        return JobRecord(job.key, columns, "ok", metrics, seconds=time.perf_counter() - started,
                         provenance=provenance)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one failing job must not stop the others
        provenance["traceback"] = traceback.format_exc()
        if device.type == "cuda":  # an OOM must not starve the next job
            torch.cuda.empty_cache()
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return JobRecord(job.key, columns, "failed", error=message, seconds=time.perf_counter() - started,
                         provenance=provenance)
