"""Suite files: the YAML schema, its validation and the job matrix it defines.

Every problem is reported before anything runs, as one line naming the file, line and field.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.schema import LineDict, SuiteError, Where, build, load_yaml

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
MODEL_SOURCES = ("timm", "zoo", "torchvision", "checkpoint")


@dataclass
class ModelSpec:
    name: str
    source: Literal["timm", "zoo", "torchvision", "checkpoint"] = "timm"
    arch: str | None = None  # defaults to name (timm / torchvision architecture, or zoo model name)
    pretrained: bool | str = False  # true, or a pretrained tag such as "a1_in1k"
    checkpoint: Path | None = None
    trust_pickle: bool = False
    family: Literal["cnn", "transformer", "hybrid"] | None = None
    num_classes: int | None = None
    kwargs: dict = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.arch or self.name

    def validate(self, where: Where) -> None:
        if self.source == "checkpoint" and self.checkpoint is None:
            raise where.error("source 'checkpoint' needs a 'checkpoint' path")
        if self.source == "zoo" and (self.checkpoint or self.pretrained):
            raise where.error("zoo models ship their weights; drop 'checkpoint'/'pretrained'")


@dataclass
class SubsetSpec:
    n: int | None = None
    seed: int = 0
    ids: Path | None = None  # a file listing sample ids (relative paths for image folders, indices otherwise)

    def validate(self, where: Where) -> None:
        if (self.n is None) == (self.ids is None):
            raise where.error("give exactly one of 'n' (a seeded random subset) or 'ids' (an ID-list file)")
        if self.n is not None and self.n <= 0:
            raise where.error("'n' must be positive")


@dataclass
class DatasetSpec:
    name: str
    kind: str
    split: str = "test"
    root: str | None = None  # may use {data_root}
    subset: SubsetSpec | None = None
    class_map: Path | None = None
    on_corrupt: Literal["fail", "skip"] = "fail"
    download: bool = False
    num_classes: int | None = None


@dataclass
class TaskSpec:
    kind: str
    name: str | None = None
    params: dict = field(default_factory=dict)
    models: list[str] | None = None  # restrict to these model names (fnmatch); default all
    datasets: list[str] | None = None  # restrict to these dataset names; default all

    @property
    def label(self) -> str:
        return self.name or self.kind


@dataclass
class Defaults:
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    limit: int | None = None
    data_root: str = "data"


@dataclass
class SuiteFile:
    name: str
    version: int | str
    models: list[ModelSpec]
    datasets: list[DatasetSpec]
    tasks: list[TaskSpec]
    description: str = ""
    defaults: Defaults = field(default_factory=Defaults)


@dataclass
class Suite:
    """A validated suite: the file's contents plus where it lives and the task objects it built."""

    spec: SuiteFile
    path: Path
    tasks: list[Any]  # harness.tasks.base.Task instances, one per TaskSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def config_hash(self) -> str:
        return stable_hash(asdict(self.spec))


def stable_hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_suite_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    named = SUITES_DIR / f"{name_or_path}.yaml"
    if named.exists():
        return named
    known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
    raise SuiteError(f"{name_or_path}: no such suite (known: {known})")


def list_suites() -> list[tuple[str, str]]:
    out = []
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        raw = load_yaml(path) or {}
        out.append((path.stem, str(raw.get("description", "")).strip().splitlines()[0] if raw.get("description") else ""))
    return out


def load_suite(name_or_path: str, data_root: str | None = None, check_files: bool = True) -> Suite:
    """Parse and validate a suite; raises SuiteError with a one-line message on any problem."""
    import harness.plugins  # noqa: F401  (registers every dataset kind and task)
    from harness.registry import DATASETS, TASKS, ZOO_MODELS

    path = resolve_suite_path(name_or_path)
    raw = load_yaml(path)
    top = Where(path, getattr(raw, "line", 1), "")
    spec: SuiteFile = build(SuiteFile, raw, top)
    if data_root is not None:
        spec.defaults.data_root = data_root
    base = path.parent

    def where(section: str, index: int, key: str | None = None) -> Where:
        w = top.child(section, raw).child(index, raw[section])
        return w.child(key, raw[section][index]) if key else w

    _check_unique(spec.models, "models", where)
    _check_unique(spec.datasets, "datasets", where)
    for i, model in enumerate(spec.models):
        if model.source == "zoo" and model.architecture not in ZOO_MODELS:
            raise where("models", i, "arch" if model.arch else "name").error(
                f"unknown zoo model {model.architecture!r} (known: {', '.join(ZOO_MODELS.list())})")
        if model.source in ("timm", "checkpoint"):
            _check_timm_arch(model.architecture, where("models", i, "arch" if model.arch else "name"))
        if model.checkpoint is not None:
            model.checkpoint = _existing(base, model.checkpoint, where("models", i, "checkpoint"), check_files)
    for i, data in enumerate(spec.datasets):
        if data.kind not in DATASETS:
            raise where("datasets", i, "kind").error(
                f"unknown dataset kind {data.kind!r} (known: {', '.join(DATASETS.list())})")
        if data.root is not None:
            data.root = expand_data_root(data.root, spec.defaults.data_root, base)
            if check_files and not data.download and not Path(data.root).exists():
                raise where("datasets", i, "root").error(f"no such directory {data.root}")
        if data.class_map is not None:
            data.class_map = _existing(base, data.class_map, where("datasets", i, "class_map"), check_files)
        if data.subset is not None and data.subset.ids is not None:
            data.subset.ids = _existing(base, data.subset.ids, where("datasets", i, "subset").child("ids", raw["datasets"][i]["subset"]), check_files)
    tasks = []
    model_names = [m.name for m in spec.models]
    data_names = [d.name for d in spec.datasets]
    for i, task_spec in enumerate(spec.tasks):
        if task_spec.kind not in TASKS:
            raise where("tasks", i, "kind").error(f"unknown task {task_spec.kind!r} (known: {', '.join(TASKS.list())})")
        task_cls = TASKS.get(task_spec.kind)
        params_where = where("tasks", i, "params") if "params" in raw["tasks"][i] else where("tasks", i)
        params = build(task_cls.Params, raw["tasks"][i].get("params") or LineDict(), params_where)
        task = task_cls(params, label=task_spec.label)
        task.check_suite(spec, params_where)
        tasks.append(task)
        for key, known in (("models", model_names), ("datasets", data_names)):
            import fnmatch

            for pattern in getattr(task_spec, key) or []:
                if not fnmatch.filter(known, pattern):
                    raise where("tasks", i, key).error(f"{pattern!r} matches no {key[:-1]} of this suite")
    return Suite(spec, path, tasks)


def _check_unique(items: list[Any], section: str, where: Any) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise where(section, i, "name").error(f"duplicate name {item.name!r}")
        seen.add(item.name)


def _check_timm_arch(arch: str, where: Where) -> None:
    import timm

    base = arch.split(".", 1)[0]
    if not timm.is_model(base):
        import difflib

        close = difflib.get_close_matches(base, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise where.error(f"unknown timm architecture {arch!r}{hint}")


def _existing(base: Path, path: Path, where: Where, check: bool) -> Path:
    resolved = path if path.is_absolute() else (base / path)
    if check and not resolved.exists():
        raise where.error(f"no such file {resolved}")
    return resolved


def expand_data_root(root: str, data_root: str, base: Path) -> str:
    expanded = Path(root.replace("{data_root}", data_root)).expanduser()
    return str(expanded if expanded.is_absolute() else (Path.cwd() / expanded))
