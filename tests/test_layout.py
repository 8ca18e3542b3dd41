"""The package's structure: no import cycles inside harness/ (counting imports inside functions too), and
the suite specs stay a leaf."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harness"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """harness modules ``path`` imports (TYPE_CHECKING blocks excluded: they never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    paths = list(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    edges = {module_name(p): imports_of(p, modules) for p in paths}
    # importing a package runs its __init__: a module importing harness.x.y depends on harness.x too, but
    # harness/__init__.py imports nothing at import time, so the edges above are the whole picture
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycles_inside_the_package():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_specs_and_the_evaluation_state_are_leaves():
    edges = graph()
    assert edges["harness.specs"] == set()
    assert edges["harness.evaluation.state"] == set()


# Imports go one way: a module imports its own layer or lower ones, never a higher one (issue 18). A subpackage's
# entry covers its modules; a module listed by itself overrides its package's entry; top-level modules are
# listed one by one, so a new module has to be placed here before the tests pass.
LAYERS = ("foundation", "data", "models", "evaluation", "robustness", "perf", "tasks", "runner", "gate", "report",
          "cli")
LAYER_OF = {
    # foundation: leaves (they import nothing of ours but each other) and the contracts every layer shares:
    # samples and targets, canonical outputs, evaluator state and records, COCO conventions, the suite's specs
    # (the gate policy is its gate: section), metric metadata, the results store
    **dict.fromkeys(("harness.specs", "harness.schema", "harness.registry", "harness.metrics", "harness.seeding",
                     "harness.numerics", "harness.pipeline", "harness.progress", "harness.formatting", "harness.env", "harness.version", "harness.extras", "harness.distributed",
                     "harness.store", "harness.evaluation.samples", "harness.evaluation.outputs",
                     "harness.evaluation.state", "harness.evaluation.coco_format", "harness.gate.policy"),
                    "foundation"),
    "harness.data": "data",
    "harness.models": "models", "harness.zoo": "models",
    "harness.evaluation": "evaluation",
    "harness.robustness": "robustness",
    "harness.perf": "perf",
    "harness.tasks": "tasks",
    **dict.fromkeys(("harness.runner", "harness.loop", "harness.merge", "harness.rescore", "harness.plugins",
                     "harness.suite", "harness.class_counts", "harness.isolated_child"), "runner"),
    "harness.gate": "gate",
    "harness.report": "report",
    "harness.cli": "cli", "harness.run": "cli", "harness.effective_command": "cli", "harness": "cli",  # the package's own run_suite: the Python face of the command line
}


def layer_of(module: str) -> str | None:
    package = ".".join(module.split(".")[:2])  # harness.x of harness.x.y; a top-level module is its own entry
    return LAYER_OF.get(module) or (LAYER_OF.get(package) if package != module else None)


def backward_imports(edges: dict[str, set[str]]) -> list[str]:
    return [f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
            for module in sorted(edges) for target in sorted(edges[module])
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))]


def test_every_module_has_a_layer():
    assert [module for module in sorted(graph()) if layer_of(module) is None] == []


def test_imports_go_one_way_through_the_layers():
    assert backward_imports(graph()) == []


def test_the_layer_check_names_both_modules_and_layers():
    assert backward_imports({"harness.data.loader": {"harness.models.wrapper", "harness.specs"}}) == [
        "harness.data.loader (data) imports harness.models.wrapper (models)"]
