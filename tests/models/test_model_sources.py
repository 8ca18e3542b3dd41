"""Model sources (harness/models/source.py): every ``source:`` is a registered ModelSource, so a new one is one
class; the validator, the loader, the class-count check and the cache key ask it, never its name."""
from __future__ import annotations

import json

import pytest
import torch

from harness import run_suite
from harness.data.preprocess import Preprocess
from harness.models.loaders import declared_num_classes, declared_output_kind, weights_identity
from harness.models.source import ModelSource, classifier_model
from harness.registry import MODEL_SOURCES
from harness.schema import SuiteError
from harness.specs import ModelSpec
from harness.suite import load_suite
from tests.conftest import zoo_suite


@MODEL_SOURCES.register("test_linear")
class LinearSource(ModelSource):
    """A seeded linear classifier on 8 x 8 digits: the smallest model a source can give."""

    name = "test_linear"

    def check(self, spec, where, suite_dir) -> None:
        if spec.architecture != "linear":
            raise where.at("arch").error(f"test_linear builds 'linear' only, not {spec.architecture!r}")

    def load(self, spec, num_classes):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, num_classes or 10))
        preprocess = Preprocess(input_size=(3, 8, 8), crop_pct=1.0, crop_mode="squash", mean=(0.5,) * 3,
                                std=(0.5,) * 3)
        return classifier_model(spec, net, preprocess, "test:seeded-linear", None, None)

    def num_classes(self, spec):
        return 10

    def weights_identity(self, spec):
        return "test:seeded-linear"


def linear_suite() -> dict:
    suite = zoo_suite(["resnet_digits"])
    suite["models"].append({"name": "tiny", "source": "test_linear", "arch": "linear", "family": "cnn"})
    return suite


def test_a_registered_source_runs_in_a_suite_like_a_built_in(write_suite, tmp_path, one_thread):
    frame = run_suite(write_suite(linear_suite()), out=tmp_path / "out", limit=30, progress=False)
    rows = frame[(frame["model"] == "tiny") & (frame["metric"] == "top1")]
    assert len(rows) == 1 and rows.iloc[0]["n"] == 30 and 0 <= rows.iloc[0]["value"] <= 1
    provenance = json.loads(rows.iloc[0]["provenance"])
    model = provenance["model"]
    assert (model["model_source"], model["weights"], model["family"]) == ("test_linear", "test:seeded-linear", "cnn")
    spec = ModelSpec(name="tiny", source="test_linear", arch="linear")
    assert (declared_num_classes(spec), declared_output_kind(spec), weights_identity(spec)) == (
        10, "logits", "test:seeded-linear")


def test_a_source_checks_its_entries_with_the_suite_s_line_numbers(write_suite):
    suite = linear_suite()
    suite["models"][1]["arch"] = "conv"
    with pytest.raises(SuiteError, match=r"suite.yaml:\d+: models\[1\].arch: test_linear builds 'linear' only"):
        load_suite(str(write_suite(suite)))


def test_an_unknown_source_names_the_field_and_the_known_ones(write_suite):
    suite = zoo_suite(["resnet_digits"])
    suite["models"][0]["source"] = "timmm"
    with pytest.raises(SuiteError, match=r"suite.yaml:\d+: models\[0\].source: unknown model source 'timmm' "
                                         r"\(known: checkpoint, hf, predictions, .*timm, torchvision, zoo\)$"):
        load_suite(str(write_suite(suite)))


@pytest.mark.parametrize("entry, kind, classes", [
    ({"name": "resnet_digits", "source": "zoo"}, "logits", 10),
    ({"name": "seg", "source": "zoo", "arch": "fpn_pvt_scenes"}, "semantic_logits", 8),
    ({"name": "resnet18", "source": "torchvision"}, "logits", 1000),
    ({"name": "fcn_resnet50", "source": "torchvision"}, "semantic_logits", 1000),
    ({"name": "fasterrcnn_resnet50_fpn", "source": "torchvision"}, "detections", 1000),
    ({"name": "resnet18", "source": "timm", "kwargs": {"num_classes": 7}}, "logits", 7),
])
def test_each_built_in_source_declares_its_output_and_class_count_without_loading(entry, kind, classes):
    spec = ModelSpec(**entry)
    assert (declared_output_kind(spec), declared_num_classes(spec)) == (kind, classes)
