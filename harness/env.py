"""What machine and software produced a number, and which device to run on."""
from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from harness.version import __version__


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; an unknown name, or an explicit CUDA request without CUDA,
    is a ValueError with a one-line message."""
    from harness.specs import device_problem

    problem = device_problem(name)
    if problem:
        raise ValueError(problem)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@lru_cache(maxsize=None)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The harness's own git commit when it runs from its checkout; None when installed (see project_commit)."""
    return project_commit(Path(__file__))  # harness/env.py: its parent is the package folder


def project_commit(package_init: Path) -> str | None:
    """HEAD of the checkout holding the package whose ``__init__.py`` is ``package_init``, only when the
    package sits at the top of a git work tree beside a pyproject.toml; an installed copy (site-packages,
    perhaps inside some other repository, e.g. a project's .venv) has no commit of ours to record."""
    root = package_init.resolve().parent.parent
    if not ((root / ".git").exists() and (root / "pyproject.toml").is_file()):
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None
    return lines[1]


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


# libraries whose version can change a number (models, transforms, attacks, corruptions, COCO scoring)
VERSIONED_LIBRARIES = ("torch", "torchvision", "timm", "torchattacks", "imagecorruptions-imaug", "pycocotools",
                       "faster-coco-eval", "numpy", "Pillow", "scikit-image", "scikit-learn", "transformers")


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that can change a result (part of every cache key)."""
    return {name: _version(name) for name in VERSIONED_LIBRARIES}


def environment(device: torch.device) -> dict[str, Any]:
    """The environment every result records."""
    env: dict[str, Any] = {
        "device": str(device),
        "device_name": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "torch_version": torch.__version__,
        "torchvision_version": _version("torchvision"),
        "timm_version": _version("timm"),
        "torchattacks_version": _version("torchattacks"),
        "libraries": library_versions(),
        "harness_version": __version__,
        "git_commit": git_commit(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({
            "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version(),
            "gpu_memory_gb": round(props.total_memory / 2**30, 1),
            "gpu_capability": f"{props.major}.{props.minor}",
            "driver_version": _nvidia_driver(),
        })
    return env


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None
