"""Plans a suite's jobs (model x dataset x task), runs them with failure isolation, caching and resume,
stores every number with its provenance (harness/run.py adds the report).

Under torchrun every rank runs the same jobs on its share of each job's batches (harness/distributed.py);
rank 0 alone reads and writes the store, the per-sample records and the report.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from harness.data.base import ImageSource
from harness.distributed import World, init_world, rank_device
from harness.env import environment, library_versions, resolve_device
from harness.loop import evaluate_shard, merge_pieces
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.partial import PartialStore
from harness.evaluation.state import RecordsError, records_path, records_present, verify_records, write_records
from harness.extras import refusal
from harness.metrics import Metric, declare
from harness.models.loaders import load_model, weights_identity
from harness.models.wrapper import LoadedModel
from harness.plugins import loaded as loaded_plugins, plugins_behind
from harness.progress import progress
from harness.class_counts import check_class_counts
from harness.schema import SuiteError, UsageError
from harness.numerics import accuracy_numerics
from harness.seeding import seed_everything
from harness.specs import DatasetSpec, ModelSpec, stable_hash
from harness.store import JobRecord, ResultStore
from harness.suite import Suite, load_suite, output_dir_for
from harness.tasks.base import JobContext, Task, derived_rows

declare("skipped_corrupt", "lower", headline=False, description="undecodable images left out (on_corrupt: skip)")


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
    rerun: bool = False  # ignore cached results and saved partial state
    progress: bool = True
    log_samples: bool = True  # keep per-sample records in <out>/samples/
    shard: tuple[int, int] | None = None  # (i, N): run every N-th job starting at i (scheduler fan-out)
    argv: list[str] | None = None


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
    interrupted: bool = False
    gate_policy: Any = None
    suite: Suite | None = None
    is_main: bool = True  # rank 0 (or the only process): it alone holds the frame and writes the report


@dataclass
class RunContext:
    """What every job of one run shares."""

    suite: Suite
    options: RunOptions
    device: torch.device
    world: World
    out_dir: Path
    env: dict[str, Any]
    seed: int
    limit: int | None
    batch_size: int
    workers: int
    sources: dict[str, ImageSource]
    fingerprints: dict[str, str]  # dataset name -> hash of its content identity
    base_columns: dict[str, Any] = field(default_factory=dict)
    models: dict[str, LoadedModel | BaseException] = field(default_factory=dict)
    precision: str = "fp32"  # accuracy passes (harness/numerics.py)


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
                in_roles = {name for names in task.roles.values() for name in names}
                for data in suite.spec.datasets:
                    # a dataset a task sees by role is not also evaluated on its own, unless listed in datasets:
                    chosen = _selected(data.name, task_spec.datasets) if task_spec.datasets is not None \
                        else data.name not in in_roles
                    if chosen:
                        jobs.append(Job(model, data, task))
    return jobs


def _selected(name: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def job_key(job: Job, rc: RunContext, weights: str) -> str:
    """Everything that can change a job's numbers: see README, 'What a cached result depends on'."""
    task = job.task
    device = rc.env["device_name"] if task.performance else rc.device.type
    return stable_hash({
        "model": asdict(job.model), "weights": weights, "dataset": asdict(job.dataset),
        "data": rc.fingerprints[job.dataset.name], "task": task.fingerprint(), "seed": rc.seed,
        "limit": rc.limit, "device": device, "batch_size": rc.batch_size if task.batch_size_matters else None,
        **({"precision": rc.precision} if rc.precision != "fp32" and not task.performance else {}),
        "versions": library_versions(), "harness": rc.env["harness_version"],
        **({"roles": {role: [rc.fingerprints[n] for n in names] for role, names in task.roles.items()}}
           if task.roles else {}),
        **({"plugins": behind} if (behind := plugins_behind(task)) else {}),
    })


def execute_suite(suite: str | Path | Suite, **overrides: Any) -> RunOutcome:
    """Run every job of ``suite`` (cached ones are read back) and return the rows; the report is the caller's
    (harness/run.py), so this layer never imports the report's."""
    options = RunOptions(**overrides)
    if not isinstance(suite, Suite):
        suite = load_suite(str(suite), data_root=options.data_root)
    defaults = suite.spec.defaults
    jobs = plan_jobs(suite, options.models)
    missing_extra = refusal(suite.name, {job.model.name: job.model for job in jobs}.values())
    if missing_extra:
        raise SuiteError(missing_extra)
    check_class_counts(suite)
    try:
        device = resolve_device(options.device or defaults.device)
    except ValueError as exc:
        if options.device:
            raise UsageError(f"--device {options.device}: {exc}") from None
        raise SuiteError(f"{suite.path}: defaults.device: {exc}") from None
    world = init_world(device)
    device = rank_device(device, world)
    if options.shard is not None:
        index, count = options.shard
        jobs = jobs[index::count]
    seed = options.seed if options.seed is not None else defaults.seed
    limit = options.limit if options.limit is not None else defaults.limit
    sources = build_sources(suite, jobs, limit, seed)
    rc = RunContext(
        suite=suite, options=options, device=device, world=world,
        out_dir=Path(options.out) if options.out else output_dir_for(suite.name),
        env={**environment(device), "plugins": [plugin.describe() for plugin in loaded_plugins()]},
        seed=seed, limit=limit, batch_size=options.batch_size or defaults.batch_size,
        workers=options.workers if options.workers is not None else defaults.workers, sources=sources,
        # a folder's manifest stats every file: once per dataset and run, not once per job
        fingerprints={name: stable_hash(source.fingerprint()) for name, source in sources.items()},
        precision=defaults.precision,
    )
    rc.base_columns = {"suite": suite.name, "suite_version": str(suite.spec.version), "suite_hash": suite.config_hash(),
                       "seed": rc.seed, "device": rc.env["device_name"], "precision": rc.precision,
                       "world_size": world.size, "torch_version": rc.env["torch_version"],
                       "timm_version": rc.env["timm_version"], "harness_version": rc.env["harness_version"],
                       "git_commit": rc.env["git_commit"]}
    weights = {m.name: weights_identity(m) for m in {j.model.name: j.model for j in jobs}.values()}
    for job in jobs:
        job.key = job_key(job, rc, weights[job.model.name])
    store = ResultStore(rc.out_dir / "results.sqlite") if world.is_main else None
    finished = set() if options.rerun or store is None else store.finished_keys()
    finished -= untrusted_records(jobs, finished, rc.out_dir)
    finished = world.broadcast(finished)
    if options.rerun and world.is_main:
        for job in jobs:
            PartialStore(rc.out_dir / "partial" / job.key).discard()
    world.gather(None)  # every rank waits until rank 0 has discarded old partial state
    run_id = store.start_run(suite=suite.name, suite_path=str(suite.path), suite_hash=suite.config_hash(),
                             git_commit=rc.env["git_commit"], harness_version=rc.env["harness_version"],
                             world_size=world.size, argv=" ".join(options.argv or []),
                             shard=options.shard) if store else None
    outcome = RunOutcome(frame=pd.DataFrame(), out_dir=rc.out_dir, gate_policy=suite.gate_policy, suite=suite,
                         is_main=world.is_main)
    try:
        for job in progress(jobs, desc=suite.name, enabled=options.progress and world.is_main, unit="job",
                            leave=True):
            if job.key in finished:
                outcome.cached += 1
                continue
            _release_other_models(rc.models, job.model.name)
            record = run_job(job, rc)
            outcome.ran += 1
            if store is not None:
                store.save(record, run_id)
                if record.status != "ok":
                    outcome.failed.append(f"{job.title}: {record.error}")
                    print(f"FAILED {job.title}: {record.error}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        if store is not None:
            store.finish_run(run_id)
            outcome.frame = store.frame(job.key for job in jobs)
            store.close()
    if not world.is_main:
        return outcome
    outcome.frame = with_derived_metrics(outcome.frame, suite.tasks)
    return outcome


def records_problem(out_dir: Path, job_key: str) -> str | None:
    """Why a finished job's per-sample records cannot be trusted (one line naming the file), or None: they
    verify, or the job kept none (``--no-log-samples``)."""
    path = records_path(Path(out_dir) / "samples", job_key)
    try:
        if records_present(path):
            verify_records(path)
    except RecordsError as exc:
        return str(exc)
    return None


def untrusted_records(jobs: list[Job], finished: set[str], out_dir: Path) -> set[str]:
    """Keys of cached jobs whose records do not verify (edited, truncated, deleted, swapped, regenerated or
    written before checksums): not reused, but recomputed, so that nothing computed from those records (the
    report's paired tests and figures, the gate) is published, and the records are written anew."""
    refused = set()
    for job in jobs:
        if job.key in finished and job.key not in refused and (problem := records_problem(out_dir, job.key)):
            print(f"not reused: {problem}; recomputing {job.title}", file=sys.stderr, flush=True)
            refused.add(job.key)
    return refused


def build_sources(suite: Suite, jobs: list[Job], limit: int | None, seed: int) -> dict[str, ImageSource]:
    """Every dataset the jobs use, built before anything runs: a missing or empty dataset is a suite error."""
    from harness.data.sources import build_source

    sources = {}
    by_name = {spec.name: spec for spec in suite.spec.datasets}
    used = {job.dataset.name: job.dataset for job in jobs}
    used.update({name: by_name[name] for job in jobs for names in job.task.roles.values() for name in names})
    for spec in used.values():
        try:
            sources[spec.name] = build_source(spec, limit, seed)
        except (OSError, ValueError, RuntimeError) as exc:
            raise SuiteError(f"{suite.path}: datasets: {spec.name}: {str(exc).splitlines()[0]}") from None
    return sources


def with_derived_metrics(frame: pd.DataFrame, tasks: list[Task]) -> pd.DataFrame:
    """Append each task's cross-job metrics (computed fresh from this run's rows)."""
    frame = frame.assign(derived=False)
    if frame.empty:
        return frame
    ok = frame[(frame["status"] == "ok") & frame["metric"].notna()]
    extra = [derived_rows(pairs) for task in tasks if (pairs := task.derive(ok[ok["task"] == task.label]))]
    return pd.concat([frame, *extra], ignore_index=True) if extra else frame


def _release_other_models(loaded: dict[str, Any], keep: str) -> None:
    for name in [n for n in loaded if n != keep]:
        del loaded[name]


def _load_model_once(job: Job, rc: RunContext) -> LoadedModel:
    if job.model.name not in rc.models:
        try:
            seed_everything(rc.seed)  # random-init weights depend on the seed, never on what ran before
            rc.models[job.model.name] = load_model(job.model).to_device(rc.device)
        except Exception as exc:  # noqa: BLE001 - recorded as the job's failure
            rc.models[job.model.name] = exc
    model = rc.models[job.model.name]
    if isinstance(model, BaseException):
        raise model
    return model


def _job_columns(job: Job, rc: RunContext) -> dict[str, Any]:
    return {**rc.base_columns, "model": job.model.name, "dataset": job.dataset.name, "split": job.dataset.split,
            "task": job.task.label, "task_kind": job.task.kind, "family": job.model.family,
            "arch": job.model.architecture,
            "precision": getattr(job.task.params, "precision", "fp32") if job.task.performance else rc.precision}


def run_job(job: Job, rc: RunContext) -> JobRecord:
    """One job on every rank; returns (on rank 0) the record to store. One failing job never stops others."""
    started = time.perf_counter()
    columns = _job_columns(job, rc)
    source = rc.sources[job.dataset.name]
    provenance: dict[str, Any] = {"env": rc.env, "task": job.task.fingerprint(), "limit": rc.limit,
                                  "batch_size": rc.batch_size, "dataset_spec": asdict(job.dataset),
                                  "dataset": source.describe(), "dataset_fingerprint": rc.fingerprints[job.dataset.name],
                                  "world_size": rc.world.size}
    if job.task.roles:  # every role dataset as the evaluated one is described
        provenance["roles"] = {role: [{"dataset": rc.sources[n].describe(), "dataset_fingerprint": rc.fingerprints[n]}
                                      for n in names] for role, names in job.task.roles.items()}
    partial = PartialStore(rc.out_dir / "partial" / job.key)
    ctx, evaluator = None, None
    try:
        model = _load_model_once(job, rc)
        columns.update({"family": model.family, "model_tag": model.tag, "weights": model.weights,
                        "weights_sha256": model.weights_sha256})
        provenance["model"] = model.provenance()
        seed_everything(rc.seed)
        ctx = JobContext(model=model, source=source, device=rc.device, batch_size=rc.batch_size, seed=rc.seed,
                         workers=rc.workers, skip_corrupt=job.dataset.on_corrupt == "skip",
                         show_progress=rc.options.progress and rc.world.is_main,
                         roles={role: [rc.sources[n] for n in names] for role, names in job.task.roles.items()})
        if job.task.performance:
            local: tuple = ("metrics", job.task.measure(ctx)) if rc.world.is_main else ("waiting",)
        else:
            ctx = job.task.prepare(ctx)
            with accuracy_numerics(rc.precision) as numerics:  # type: ignore[arg-type]
                provenance["numerics"] = numerics
                evaluator = job.task.evaluators(job.task.job_meta(ctx))  # processes, then computes
                local = ("pieces", evaluate_shard(job.task, ctx, partial, rc.world, evaluator))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one failing job must not stop the others
        if rc.device.type == "cuda":  # an OOM must not starve the next job
            torch.cuda.empty_cache()
        local = ("error", f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc())
    gathered = rc.world.gather(local)
    errors = [g for g in gathered if g[0] == "error"]
    if errors:
        provenance["traceback"] = errors[0][2]
        return JobRecord(job.key, columns, "failed", error=errors[0][1], seconds=time.perf_counter() - started,
                         provenance=provenance)
    if job.task.performance:
        metrics = gathered[0][1]
    else:
        try:
            assert evaluator is not None  # set with the pieces
            metrics = _finish_accuracy_job(job, rc, ctx, [g[1] for g in gathered], provenance, evaluator)
        except Exception as exc:  # noqa: BLE001 - e.g. inconsistent data found when computing
            provenance["traceback"] = traceback.format_exc()
            return JobRecord(job.key, columns, "failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                             seconds=time.perf_counter() - started, provenance=provenance)
    if rc.world.is_main:
        partial.discard()
    return JobRecord(job.key, columns, "ok", metrics, seconds=time.perf_counter() - started, provenance=provenance)


def provenance_meta(meta: dict[str, Any], limit: int = 4096) -> dict[str, Any]:
    """The job's meta as provenance: small facts as they are, a large value (a COCO ground truth) by its
    sha256 and size. Provenance goes with every metric row; the records file keeps the meta whole."""
    out = {}
    for key, value in meta.items():
        text = json.dumps(value, sort_keys=True, default=str)
        out[key] = value if len(text) <= limit else {"sha256": hashlib.sha256(text.encode()).hexdigest(),
                                                      "json_bytes": len(text)}
    return out


def _finish_accuracy_job(job: Job, rc: RunContext, ctx: JobContext, per_rank: list, provenance: dict,
                         evaluator: Evaluator) -> list[Metric]:
    """Merge the ranks' batch states, compute the metrics, keep the per-sample records (rank 0)."""
    if not rc.world.is_main:
        return []
    state = merge_pieces(per_rank)
    meta = job.task.job_meta(ctx)
    metrics = evaluator.compute(state)  # the instance that processed the batches (loop.evaluate_shard)
    ids = [ctx.source.sample_id(i) for i in range(len(ctx.source))]
    provenance.update({"job_meta": provenance_meta(meta), "samples": ctx.source.describe(), "n_samples": len(ids),
                       "sample_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()})
    for pass_name, count in state.skipped().items():
        metrics.append(Metric("skipped_corrupt", float(count), len(ids), {"pass": pass_name}))
    path = records_path(rc.out_dir / "samples", job.key)
    if rc.options.log_samples:  # the digest goes to the store with the job: a swapped or regenerated file is caught
        provenance["records_sha256"] = write_records(path, state, meta=meta, job_key=job.key)
    else:
        path.unlink(missing_ok=True)  # records of an earlier computation are not this result's
    return metrics
