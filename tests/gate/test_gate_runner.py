"""The regression gate end to end through the CLI on the embedded zoo: real runs, real baselines."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from harness.cli import main
import harness.plugins  # noqa: F401  (registers the zoo)
from harness.registry import ZOO_MODELS

pytestmark = pytest.mark.slow


def _suite(tmp_path, name: str, resnet: dict, limit: int | None = None, eps: str | None = None) -> str:
    tasks = [{"kind": "classification", "params": {"topk": [1, 5]}}]
    if eps:
        tasks.append({"kind": "pgd", "params": {"eps": [eps], "steps": 2, "n": 40, "random_start": False,
                                                "flags": False}})
    suite = {"name": "gated", "version": 1, "defaults": {"batch_size": 150, "seed": 0, **({"limit": limit} if limit else {})},
             "models": [{"name": "resnet", "source": "zoo", "arch": "resnet_digits", **resnet},
                        {"name": "vit", "source": "zoo", "arch": "vit_digits"}],
             "datasets": [{"name": "digits-test", "kind": "digits", "split": "test"}], "tasks": tasks}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory):
    """resnet_digits with seeded noise on its weights: top-1 drops by a few points (99.8% -> about 97%)."""
    state = load_file(str(ZOO_MODELS.get("resnet_digits").weights_file))
    generator = torch.Generator().manual_seed(0)
    noisy = {k: v + 0.22 * v.std() * torch.randn(v.shape, generator=generator)
             if v.is_floating_point() and v.dim() > 1 else v for k, v in state.items()}
    path = tmp_path_factory.mktemp("weights") / "resnet_noisy.safetensors"
    save_file(noisy, str(path))
    return path


def _failures(junit) -> set[str]:
    cases = ET.parse(junit).getroot().iter("testcase")
    return {f"{c.get('classname')}:{c.get('name')}" for c in cases if c.find("failure") is not None}


def test_gate_catches_degraded_weights_and_a_preprocessing_bug_and_credits_improvements(tmp_path, perturbed):
    base = tmp_path / "base.json"
    assert main(["--suite", _suite(tmp_path, "main", {}), "--out", str(tmp_path / "main"), "--no-progress",
                 "--save-baseline", str(base)]) == 0
    # unchanged model: pass
    assert main(["--suite", _suite(tmp_path, "same", {}), "--out", str(tmp_path / "same"), "--no-progress",
                 "--gate", str(base)]) == 0
    # perturbed weights: regression, and JUnit fails exactly the degraded model's top-1
    junit = tmp_path / "junit.xml"
    code = main(["--suite", _suite(tmp_path, "pr", {"checkpoint": str(perturbed)}), "--out", str(tmp_path / "pr"),
                 "--no-progress", "--gate", str(base), "--junit", str(junit)])
    assert code == 1
    assert _failures(junit) == {"resnet.digits-test.classification:top1"}
    assert "Regression check" in (tmp_path / "pr" / "index.html").read_text()
    # a normalisation bug on the same weights is judged by the numbers: a regression
    wrong_norm = {"preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}}
    assert main(["--suite", _suite(tmp_path, "norm", wrong_norm), "--out", str(tmp_path / "norm"), "--no-progress",
                 "--gate", str(base), "--junit", str(junit)]) == 1
    assert "resnet.digits-test.classification:top1" in _failures(junit)
    # the degraded model as baseline: the original is an improvement, not a failure
    worse = tmp_path / "worse.json"
    assert main(["--suite", _suite(tmp_path, "pr", {"checkpoint": str(perturbed)}), "--out", str(tmp_path / "pr"),
                 "--no-progress", "--save-baseline", str(worse)]) == 0
    assert main(["--suite", _suite(tmp_path, "same", {}), "--out", str(tmp_path / "same"), "--no-progress",
                 "--gate", str(worse), "--junit", str(junit)]) == 0
    assert _failures(junit) == set() and "improvement" in junit.read_text()


def test_not_comparable_runs_exit_2_naming_the_field(tmp_path, capsys):
    base = tmp_path / "base.json"
    assert main(["--suite", _suite(tmp_path, "main", {}, eps="4/255"), "--out", str(tmp_path / "main"),
                 "--no-progress", "--save-baseline", str(base)]) == 0
    capsys.readouterr()
    assert main(["--suite", _suite(tmp_path, "subset", {}, limit=300, eps="4/255"), "--out", str(tmp_path / "s"),
                 "--no-progress", "--gate", str(base)]) == 2
    assert "sample" in capsys.readouterr().out.lower()
    assert main(["--suite", _suite(tmp_path, "eps", {}, eps="8/255"), "--out", str(tmp_path / "e"), "--no-progress",
                 "--gate", str(base)]) == 2
    assert "eps" in capsys.readouterr().out
