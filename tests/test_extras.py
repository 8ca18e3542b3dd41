"""A base install (no ``[hf]`` extra): every shipped suite still validates, and running models that need
the extra is refused in one line before any work starts, naming the pip command. The interpreter under
test is this one with ``transformers`` made unimportable, as on a machine that never installed it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.registry import Registry, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
WITHOUT_TRANSFORMERS = "import sys; sys.modules['transformers'] = None\n"  # `import transformers` now fails


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TRANSFORMERS + code], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_every_shipped_suite_validates_without_the_hf_extra(tmp_path):
    shipped = sorted(p.stem for p in (REPO / "suites").glob("*.yaml"))
    code = ("import importlib.util\nassert importlib.util.find_spec('transformers') is None\n"
            "from harness.suite import load_suite\n"
            f"for name in {shipped!r}:\n    load_suite(name, check_files=False)\n    print('valid', name)\n")
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [word for name in shipped for word in ("valid", name)]
    assert any("source: hf" in (REPO / "suites" / f"{name}.yaml").read_text() for name in shipped)


def test_running_hf_models_without_the_extra_fails_in_one_line_before_any_work(tmp_path):
    suite = tmp_path / "mixed.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "mixed", "version": 1, "defaults": {"device": "cpu", "batch_size": 4},
        "models": [{"name": "centernet_resnet_scenes", "source": "zoo"},
                   {"name": "detr-tiny", "source": "hf", "output": "detections", "num_classes": 5,
                    "config": {"model_type": "detr", "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
                               "use_timm_backbone": False, "use_pretrained_backbone": False,
                               "backbone_config": {"model_type": "resnet", "depths": [1, 1, 1, 1]}}}],
        "datasets": [{"name": "scenes", "kind": "scenes", "split": "test", "subset": {"n": 4}}],
        "tasks": [{"kind": "detection"}],
    }, sort_keys=False))
    run = "from harness.cli import main\nsys.exit(main({argv!r}))\n"
    refused = _python(run.format(argv=["--suite", str(suite), "--out", "out", "--no-progress"]), tmp_path)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert refused.stderr.splitlines() == [
        "error: suite mixed needs the 'hf' extra (transformers, for detr-tiny): pip install \"visionbench-harness[hf]\""]
    assert not (tmp_path / "out").exists()  # nothing started
    # the models that need no extra still run
    ran = _python(run.format(argv=["--suite", str(suite), "--out", "out", "--no-progress", "--models", "centernet*"]),
                  tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "1 job(s) run, 0 cached, 0 failed" in ran.stdout


def test_an_empty_registry_is_never_shown_as_the_list_of_choices():
    registry = Registry("hf output")
    with pytest.raises(UnknownNameError) as empty:
        registry.get("detections")
    assert str(empty.value) == "unknown hf output 'detections': no hf output is registered"
    registry.register("panoptic")(object())
    with pytest.raises(UnknownNameError) as unknown:
        registry.get("zzz")
    assert str(unknown.value) == "unknown hf output 'zzz' (known: panoptic)"
