"""Optional extras: the model sources that need a ``pip install "visionbench-harness[EXTRA]"`` and the
one-line refusal to run a suite without it. A suite that needs a missing extra still validates (its file
is fine); only running its jobs is refused, before any work starts."""
from __future__ import annotations

import importlib.util
from typing import Iterable

from harness.specs import ModelSpec

DISTRIBUTION = "visionbench-harness"
# model source -> (extra, the module that extra installs)
SOURCE_EXTRAS = {"hf": ("hf", "transformers")}


def install_hint(extra: str) -> str:
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def missing_extras(models: Iterable[ModelSpec]) -> dict[tuple[str, str], list[str]]:
    """(extra, module) -> the names of ``models`` that need it, for each extra whose module is missing."""
    missing: dict[tuple[str, str], list[str]] = {}
    for model in models:
        needed = SOURCE_EXTRAS.get(model.source)
        if needed is not None and importlib.util.find_spec(needed[1]) is None:
            missing.setdefault(needed, []).append(model.name)
    return missing


def refusal(suite_name: str, models: Iterable[ModelSpec]) -> str | None:
    """The one-line message for running ``models`` of a suite without an extra they need, or None."""
    missing = missing_extras(models)
    if not missing:
        return None
    (extra, module), names = next(iter(missing.items()))
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"suite {suite_name} needs the '{extra}' extra ({module}, for {shown}): {install_hint(extra)}"
