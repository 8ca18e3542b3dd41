"""Suite files: the YAML schema, its validation and the job matrix it defines.

Every problem is reported before anything runs, as one line naming the file, line and field.

Paths: a relative path written in a suite file (checkpoint, class_map, subset ids, a dataset root,
``defaults.data_root``) is relative to the folder holding the suite file, whatever the current directory.
``{data_root}`` in a dataset root is replaced by ``defaults.data_root``, or by ``--data-root`` given on the
command line (a command-line path, so relative to the current directory).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.schema import LineDict, SuiteError, Where, build, load_yaml
from harness.specs import ModelSpec, SuiteFile, expand_data_root, stable_hash

REPORTS_DIR = Path("reports")


def _shipped_suites_dir() -> Path:
    """The shipped suites: ``harness/suites`` in an installed package (setup.py maps the top-level
    ``suites/`` folder there), else the checkout's ``suites/`` folder beside ``harness/``."""
    installed = Path(__file__).resolve().parent / "suites"
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "suites"


SUITES_DIR = _shipped_suites_dir()


@dataclass
class Suite:
    """A validated suite: the file's contents plus where it lives and the task objects it built."""

    spec: SuiteFile
    path: Path
    tasks: list[Any]  # harness.tasks.base.Task instances, one per TaskSpec
    raw: Any = None  # the parsed YAML (with line numbers), for errors found after loading
    gate_policy: Any = None  # harness.gate.GatePolicy from the suite's ``gate:`` section

    @property
    def name(self) -> str:
        return self.spec.name

    def config_hash(self) -> str:
        return stable_hash(asdict(self.spec))


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
    """(name, first sentence of the description) of each shipped suite."""
    out = []
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        raw = load_yaml(path) or {}
        text = " ".join(str(raw.get("description") or "").split())
        out.append((path.stem, text.split(". ", 1)[0].rstrip(".")))
    return out


def output_dir_for(suite_name: str) -> Path:
    """The default output folder ``reports/<name>``; a name that would leave ``reports/`` is refused."""
    from harness.specs import NAME_PATTERN

    if not NAME_PATTERN.fullmatch(suite_name) or suite_name in (".", ".."):
        raise SuiteError(f"suite name {suite_name!r} cannot name an output folder (letters, digits, '-', '_', '.')")
    return REPORTS_DIR / suite_name


def load_suite(name_or_path: str, data_root: str | None = None, check_files: bool = True) -> Suite:
    """Parse and validate a suite; raises SuiteError with a one-line message on any problem."""
    import harness.plugins  # noqa: F401  (registers every dataset kind and task)
    from harness.class_counts import matching
    from harness.tasks.base import forward_pass_needed
    from harness.models.loaders import model_source
    from harness.registry import DATASETS, MODEL_SOURCES, TASKS

    path = resolve_suite_path(name_or_path)
    raw = load_yaml(path)
    top = Where(path, getattr(raw, "line", 1), "")
    spec: SuiteFile = build(SuiteFile, raw, top)
    if spec.plugins:
        _load_plugins(spec.plugins, top.child("plugins", raw), raw["plugins"])
    base = path.resolve().parent
    # --data-root is a command-line path (relative to the current directory); the suite's own is
    # relative to the suite file, like every other path written in it.
    chosen = Path(data_root).expanduser() if data_root is not None else Path(spec.defaults.data_root).expanduser()
    spec.defaults.data_root = os.path.abspath((Path.cwd() if data_root is not None else base) / chosen)

    def where(section: str, index: int, key: str | None = None) -> Where:
        w = top.child(section, raw).child(index, raw[section])
        return w.child(key, raw[section][index]) if key else w

    _check_unique(spec.models, "models", where)
    _check_unique(spec.datasets, "datasets", where)
    for i, model in enumerate(spec.models):
        entry = where("models", i).within(raw["models"][i])
        if model.source not in MODEL_SOURCES:
            known = ", ".join(MODEL_SOURCES.list())
            raise entry.at("source").error(f"unknown model source {model.source!r} (known: {known})")
        model_source(model).check(model, entry, base)
        if model.checkpoint is not None:
            model.checkpoint = _existing(base, model.checkpoint, where("models", i, "checkpoint"), check_files)
        if model.path is not None:
            model.path = expand_data_root(model.path, spec.defaults.data_root, base)
            if check_files and not Path(model.path).exists():
                raise where("models", i, "path").error(f"no such file or folder {model.path}")
    for i, data in enumerate(spec.datasets):
        if data.kind not in DATASETS:
            raise where("datasets", i, "kind").error(
                f"unknown dataset kind {data.kind!r} (known: {', '.join(DATASETS.list())})")
        if data.root is not None:
            data.root = expand_data_root(data.root, spec.defaults.data_root, base)
            if check_files and not data.download and not Path(data.root).exists():
                hint = " (give --data-root, or set defaults.data_root)" if "{data_root}" in raw_root(raw, i) else ""
                raise where("datasets", i, "root").error(f"no such directory {data.root}{hint}")
            check_root = getattr(DATASETS.get(data.kind), "check_root", None)
            if check_files and check_root is not None and Path(data.root).exists():
                try:
                    check_root(Path(data.root))
                except (ValueError, OSError) as exc:
                    raise where("datasets", i, "root").error(str(exc)) from None
        if data.class_map is not None:
            data.class_map = _existing(base, data.class_map, where("datasets", i, "class_map"), check_files)
        if data.class_names is not None:  # like class_map: relative to the suite file
            data.class_names = _existing(base, data.class_names, where("datasets", i, "class_names"), check_files)
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
        if task_spec.roles:
            task.roles = _dataset_roles(task.kind, _accepted_roles(task, task_spec.evaluators), task_spec.roles,
                                        [d.name for d in spec.datasets], where("tasks", i, "roles"),
                                        raw["tasks"][i]["roles"])
        for j, entry in enumerate(task_spec.evaluators or []):
            _attach_evaluator(task, entry, where("tasks", i, "evaluators").child(j, raw["tasks"][i]["evaluators"]))
        if task.prediction_kind is None:
            saved = matching([m.name for m in spec.models if m.source == "predictions"], task_spec.models)
            if saved:
                raise where("tasks", i, "models" if task_spec.models else "kind").error(
                    f"{forward_pass_needed(saved[0], task_spec.label)} (list the models it runs under 'models:')")
        tasks.append(task)
        for key, known in (("models", model_names), ("datasets", data_names)):
            import fnmatch

            for pattern in getattr(task_spec, key) or []:
                if not fnmatch.filter(known, pattern):
                    raise where("tasks", i, key).error(f"{pattern!r} matches no {key[:-1]} of this suite")
    from harness.gate.policy import GatePolicy, GatePolicyError

    try:
        policy = GatePolicy.from_dict(spec.gate, where="gate")
    except GatePolicyError as exc:
        raise top.child("gate", raw).error(str(exc).removeprefix("gate: ").removeprefix("gate")) from None
    suite = Suite(spec, path, tasks, raw, policy)
    if check_files:
        from harness.class_counts import check_class_counts

        check_class_counts(suite)
    return suite


def _load_plugins(modules: list[str], where: Where, raw: Any) -> None:
    """The suite's ``plugins:``: importable modules that register what the suite uses (harness/plugins.py)."""
    from harness.plugins import PluginError, load_modules

    for i, name in enumerate(modules):
        if not isinstance(name, str) or not name.replace(".", "_").isidentifier():
            raise where.child(i, raw).error(f"{name!r} is not a module name (e.g. my_package.vision_tasks)")
        try:
            load_modules([name])
        except PluginError as exc:
            raise where.child(i, raw).error(str(exc)) from None


def _attach_evaluator(task: Any, entry: Any, where: Where) -> None:
    """One ``evaluators:`` entry of a task: a registered evaluator, its parameters (checked against the task's
    dataset roles), outputs the task's passes give, and a name no other evaluator of the task has."""
    from harness.registry import EVALUATORS

    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        raise where.error("expected a mapping with 'kind' (a registered evaluator) and its parameters")
    if entry["kind"] not in EVALUATORS:
        raise where.child("kind", entry).error(
            f"unknown evaluator {entry['kind']!r} (known: {', '.join(EVALUATORS.list()) or 'none'})")
    evaluator_cls = EVALUATORS.get(entry["kind"])
    name = entry.get("name", entry["kind"])
    if not isinstance(name, str) or not name or "|" in name or name in [a.name for a in task.attached]:
        raise where.child("name", entry).error(f"name {name!r}: give each evaluator of a task its own name "
                                               "(without '|')")
    missing = [kind for kind in evaluator_cls.needs if kind not in task.offers()]
    if missing:
        raise where.child("kind", entry).error(f"evaluator {entry['kind']} reads {missing[0]} outputs; task "
                                               f"{task.kind} gives {', '.join(task.offers())}")
    given = LineDict({k: v for k, v in entry.items() if k not in ("kind", "name")})
    given.line, given.key_lines = getattr(entry, "line", where.line), getattr(entry, "key_lines", {})
    params = build(evaluator_cls.Params, given, where)
    evaluator_cls.check_roles(params, task.roles, where.within(given))
    task.attach(entry["kind"], params, name)


def _accepted_roles(task: Any, evaluators: Any) -> dict[str, str]:
    """The dataset roles a job may name: the task's own and those of the evaluators the suite attaches to it
    (e.g. OOD detection's ``ood_near``); role -> "one" or "many"."""
    from harness.registry import EVALUATORS

    accepted = dict(task.dataset_roles)
    for entry in evaluators or []:
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if isinstance(kind, str) and kind in EVALUATORS:
            accepted.update(EVALUATORS.get(kind).dataset_roles)
    return accepted


def _dataset_roles(kind: str, accepted: dict[str, str], roles: dict, datasets: list[str], where: Where,
                   raw: Any) -> dict[str, list[str]]:
    """A task's ``roles:``: each a role the task or an attached evaluator takes, naming datasets of the suite."""
    if not isinstance(roles, dict):
        raise where.error("expected a mapping of role -> dataset name(s)")
    chosen = {}
    for role, names in roles.items():
        here = where.child(role, raw)
        if role not in accepted:
            known = ", ".join(accepted) or "none"
            raise here.error(f"task {kind} takes no dataset role {role!r} (roles it takes here: {known})")
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise here.error("expected a dataset name or a list of them")
        if accepted[role] == "one" and len(names) != 1:
            raise here.error(f"role {role} takes one dataset, got {len(names)}")
        for name in names:
            if name not in datasets:
                raise here.error(f"{name!r} is not a dataset of this suite (datasets: {', '.join(datasets)})")
        chosen[role] = list(dict.fromkeys(names))
    return chosen


def raw_root(raw: Any, index: int) -> str:
    return str(raw["datasets"][index].get("root", ""))


def _check_unique(items: list[Any], section: str, where: Any) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise where(section, i, "name").error(f"duplicate name {item.name!r}")
        seen.add(item.name)


def _existing(base: Path, path: Path, where: Where, check: bool) -> Path:
    resolved = Path(os.path.abspath(base / path.expanduser()))
    if check and not resolved.exists():
        raise where.error(f"no such file {resolved}")
    return resolved
