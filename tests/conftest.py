"""Shared fixtures: real photos (scikit-image) laid out as a miniature ImageNet val folder, suite writers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

# Real photos standing in for ImageNet classes (folder wnid -> photos), at small odd sizes.
MINI_IMAGENET = {
    "n02123045": ["chelsea", "cat"],  # tabby cat (281)
    "n03773504": ["rocket"],  # missile (657)
    "n07920052": ["coffee"],  # espresso (967)
    "n10565667": ["astronaut", "immunohistochemistry"],  # scuba diver (983) - labels only need to be fixed
}


def photo(name: str, max_side: int = 120) -> Image.Image:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    image = Image.fromarray(array[..., :3])
    image.thumbnail((max_side, max_side))
    return image


def write_mini_imagenet(root: Path) -> Path:
    """``root/val/<wnid>/ILSVRC2012_val_000000NN.JPEG`` like the real val folder; returns root."""
    number = 1
    for wnid, names in MINI_IMAGENET.items():
        folder = root / "val" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            photo(name).save(folder / f"ILSVRC2012_val_{number:08d}.JPEG", quality=90)
            number += 1
    return root


def timm_stand_ins(folder: Path) -> list[dict]:
    """Suite model entries for a CNN's and a transformer's hub name, backed by tiny seeded random-init timm
    models with ImageNet's 1000 classes (safetensors written to ``folder``)."""
    import timm
    from safetensors.torch import save_file

    models = []
    for name, arch in (("resnet50", "test_resnet"), ("vit_base_patch16_224", "test_vit")):
        torch.manual_seed(len(models))
        weights = folder / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in timm.create_model(arch, num_classes=1000).state_dict().items()},
                  str(weights))
        models.append({"name": name, "source": "checkpoint", "arch": arch, "checkpoint": str(weights)})
    return models


@pytest.fixture(scope="session")
def mini_imagenet(tmp_path_factory) -> Path:
    return write_mini_imagenet(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite dict (or raw text) to a YAML file in tmp_path and return its path."""

    def write(content: dict | str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write


def zoo_suite(models=("resnet_digits", "vit_digits"), **task_params) -> dict:
    return {
        "name": "t", "version": 1,
        "models": [{"name": m, "source": "zoo"} for m in models],
        "datasets": [{"name": "digits-test", "kind": "digits", "split": "test"}],
        "tasks": [{"kind": "classification", "params": task_params or {"topk": [1, 5]}}],
    }


def _one_thread():
    """Tiny models on a shared 2-core machine: one thread avoids OpenMP contention (several times faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


one_thread = pytest.fixture(_one_thread, name="one_thread")
one_thread_module = pytest.fixture(_one_thread, scope="module", name="one_thread_module")


@pytest.fixture(scope="module")
def resnet_digits():
    """The zoo ResNet, loaded once per test module (tests that wrap it must not change its mode)."""
    from harness.models.loaders import load_model
    from harness.specs import ModelSpec

    return load_model(ModelSpec(name="resnet_digits", source="zoo"))


@pytest.fixture(scope="session")
def classification_run(tmp_path_factory) -> Path:
    """The offline classification suite (4 zoo models on digits, --limit 60) run once per session through the
    command line; its out folder (index.html, results.json, samples/). Shared: tests must not modify it."""
    out = tmp_path_factory.mktemp("classification-run")
    repo = Path(__file__).resolve().parent.parent
    # --device cpu: its users check what the CPU run gives (matched pairs, verdicts, discordant pairs)
    result = subprocess.run([sys.executable, str(repo / "run_bench.py"), "--suite", "classification", "--out", str(out),
                             "--limit", "60", "--no-progress", "--device", "cpu"], capture_output=True, text=True,
                            cwd=repo)
    assert result.returncode == 0, result.stderr
    return out


def trimmed_suite(tmp_path: Path, name: str, **corruption_params) -> Path:
    """A copy of shipped suite ``name`` with its corruption task's grid cut to what a test can afford
    (``corruption_params`` override its params), or dropped when none are given."""
    import yaml

    from harness.suite import SUITES_DIR

    raw = yaml.safe_load((SUITES_DIR / f"{name}.yaml").read_text())
    tasks = [t for t in raw["tasks"] if t["kind"] != "corruption"]
    if corruption_params:
        corruption = next(t for t in raw["tasks"] if t["kind"] == "corruption")
        tasks.append({**corruption, "params": {**corruption["params"], **corruption_params}})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**raw, "tasks": tasks}, sort_keys=False))
    return path


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker gets one thread (and so do the runs it starts as subprocesses): two
    workers with two OpenMP threads each on a 2-core machine spend their time contending, not computing."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


# On CI (CI=true) a test that skips for want of a tool or package fails instead: CI installs everything the
# tests need, so such a skip means a missing install step. Only what CI's machine cannot have may skip.
SKIPS_ALLOWED_ON_CI = ("needs a CUDA device", "needs a machine without CUDA")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() in ("1", "true", "yes") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(allowed in reason for allowed in SKIPS_ALLOWED_ON_CI):
            report.outcome = "failed"
            report.longrepr = f"skipped on CI, where every test must run: {reason}"


class InferSpy:
    """The classification task's batch indexes as it infers them (``calls``); it raises Ctrl-C on reaching
    ``stop_at`` (None: never), so a test can interrupt a run and then see which batches a resume recomputes."""

    def __init__(self, monkeypatch, stop_at: int | None) -> None:
        from harness.tasks.classification import ClassificationTask

        self.calls: list[int] = []
        self.stop_at = stop_at
        original = ClassificationTask.infer

        def infer(task, ctx, pass_, index, batch):
            self.calls.append(index)
            if index == self.stop_at:
                raise KeyboardInterrupt
            return original(task, ctx, pass_, index, batch)

        monkeypatch.setattr(ClassificationTask, "infer", infer)
