"""Every module that registers something, imported before a registry is used: the built-in ones, then the
installed plugins (entry-point group ``visionbench.plugins``), then any a suite lists under ``plugins:``.

A plugin is an importable module that registers tasks, evaluators, metrics, dataset kinds, model sources or
report sections with the registries in ``harness.registry``, exactly as the built-in modules do. A package
makes itself an installed plugin by declaring an entry point in the group, naming that module, e.g. in its
pyproject.toml::

    [project.entry-points."visionbench.plugins"]
    flip = "vb_flip"

See docs/extending.md.
"""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Sequence

import harness.zoo  # noqa: F401
from harness.schema import SuiteError
from harness.data import cifar, coco, digits, folder, imagenet_shifts, printed_digits, printed_letters, scenes, texture_patches  # noqa: F401
from harness.data import coco_panoptic, imglist, segfolder  # noqa: F401
from harness.evaluation import calibration, detection, ood, panoptic, real_labels, semantic  # noqa: F401  (metric declarations)
from harness.models import hf_detection, hf_segmentation, loaders  # noqa: F401
from harness.tasks import classification  # noqa: F401
from harness.tasks import adversarial  # noqa: F401
from harness.tasks import corruption  # noqa: F401
from harness.tasks import latency  # noqa: F401
from harness.tasks import occlusion  # noqa: F401
from harness.tasks import detection, panoptic, segmentation  # noqa: F401
from harness.robustness import effective_evaluator  # noqa: F401  (the effective_robustness evaluator)

ENTRY_POINT_GROUP = "visionbench.plugins"


class PluginError(SuiteError):
    """A plugin that cannot be imported: reported like a suite problem, one line naming the plugin (exit 2)."""


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin module, as provenance records it."""

    module: str
    distribution: str | None = None  # the installed package declaring it (entry-point plugins)
    version: str | None = None

    def describe(self) -> dict[str, str | None]:
        return asdict(self)


_LOADED: dict[str, Plugin] = {}


def load_installed() -> list[Plugin]:
    """Import every module the installed packages declare in the ``visionbench.plugins`` group (once)."""
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.module in _LOADED:
            continue
        dist = entry.dist
        try:
            loaded_object = entry.load()
            if callable(loaded_object):  # ``module:function``: the function registers
                loaded_object()
        except Exception as exc:  # noqa: BLE001 - any failure is the plugin's: named, in one line
            package = f" of package {dist.name}" if dist is not None else ""
            raise PluginError(f"plugin {entry.name} ({entry.value}{package}, entry point group "
                              f"{ENTRY_POINT_GROUP}) failed to import: {type(exc).__name__}: {exc}") from None
        _LOADED[entry.module] = Plugin(entry.module, dist.name if dist else None, dist.version if dist else None)
    return list(_LOADED.values())


def load_modules(modules: Sequence[str]) -> list[Plugin]:
    """Import the modules a suite lists under ``plugins:``; a failure raises PluginError naming the module."""
    for name in modules:
        if name in _LOADED:
            continue
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            raise PluginError(f"plugin module {name!r} failed to import: {type(exc).__name__}: {exc}") from None
        _LOADED[name] = Plugin(name, None, getattr(module, "__version__", None))
    return [_LOADED[name] for name in modules]


def plugins_behind(task: Any) -> list[dict[str, str | None]]:
    """The loaded plugins whose code computes ``task``'s numbers (its class, its attached evaluators): part of
    its jobs' cache keys, so a new plugin version reruns them; built-in code gives an empty list."""
    from harness.registry import EVALUATORS

    classes = [type(task)] + [EVALUATORS.get(a.kind) for a in task.attached]
    return [plugin.describe() for plugin in _LOADED.values()
            if any(cls.__module__ == plugin.module or cls.__module__.startswith(plugin.module + ".")
                   for cls in classes)]


def loaded() -> list[Plugin]:
    """Every plugin imported in this process so far, in load order."""
    return list(_LOADED.values())


load_installed()
