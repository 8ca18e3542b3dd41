"""Hugging Face segmenters (tiny random-init SegFormer, UperNet, Mask2Former, OneFormer): the adapter's
semantic and panoptic results equal the image processor's own post-processing on the same raw outputs, its
inputs equal the processor's on the uint8 image, labels map to dataset categories, entry mistakes are one line."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import transformers  # noqa: F401  (the dev install brings it: a missing one is an error, not a skip)

from conftest import photo  # noqa: E402
from hf_tiny import LOOSE, SMALL_INPUT, SQUARE_INPUT, mask2former, save_oneformer, segformer, spread, upernet  # noqa: E402
from harness.data.scenes import ScenesSource  # noqa: E402
from harness.evaluation.semantic import predict_labels  # noqa: E402
from harness.models.hf_segmentation import label_mapping  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.schema import SuiteError  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402
from harness.suite import load_suite  # noqa: E402

SCENES = ScenesSource(split="test", target="panoptic", size=4)
CATEGORIES = SCENES.categories()  # things 1, 2, 3, 5, 7 then stuff 12, 15, 20
NAMES = ["sky", "wall", "ground", "disc", "rectangle", "triangle", "star", "cross"]  # a model's own label order


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def images() -> list[torch.Tensor]:
    """Two scenes (128 x 128) and a photo of another size, as [0, 1] pixels."""
    pictures = [SCENES.load(i).image for i in range(2)] + [photo("coffee", 90)]
    return [torch.from_numpy(np.array(p)).permute(2, 0, 1).float() / 255 for p in pictures]


def loaded(config: dict, output: str, processor: dict, **kwargs):
    torch.manual_seed(0)
    spec = ModelSpec(name="m", source="hf", arch="tiny", output=output,
                     config=config, processor=processor, kwargs=kwargs)
    return load_model(spec)


@pytest.mark.parametrize("config, processor", [(segformer(NAMES), SQUARE_INPUT), (upernet(NAMES), SQUARE_INPUT),
                                               (mask2former(NAMES), SMALL_INPUT)],
                         ids=["segformer", "upernet", "mask2former"])
def test_semantic_labels_equal_the_processors_post_processing(config, processor):
    model = loaded(config, "semantic_logits", processor)
    module = model.module
    spread(module.net)
    for image in images():
        size = tuple(image.shape[-2:])
        ours = predict_labels(module(image[None])[0], size)  # what the segmentation task scores
        with torch.no_grad():
            raw = module.net(**module.encode([image]))
        reference = module.processor.post_process_semantic_segmentation(raw, target_sizes=[size])[0]
        assert torch.equal(ours, reference)
    assert model.num_classes == 8 and model.output_kind == "semantic_logits"


def test_processor_inputs_match_the_processor_on_the_uint8_image():
    """The adapter feeds [0, 1] floats (no rescale); the processor on the original 8-bit image gives the same
    pixel_values up to its resize of rounded vs unrounded pixels."""
    module = loaded(mask2former(NAMES), "panoptic", SMALL_INPUT).module
    for image in images():
        ours = module.encode([image])["pixel_values"]
        uint8 = (image * 255).round().byte()
        reference = module.processor(images=[uint8], return_tensors="pt")["pixel_values"]
        assert ours.shape == reference.shape
        assert (ours - reference).abs().max() < 0.03  # 1/255 of the range, after normalisation by std ~0.22


def check_panoptic(module, names: list[str]) -> tuple[int, int]:
    """The bound adapter's predictions are the processor's segments with each stuff label's segments merged
    into its first, VOID 0, labels -> scenes category ids."""
    bound = module.for_categories(CATEGORIES)
    by_name = {c["name"]: c["id"] for c in CATEGORIES}
    stuff_labels = {i for i, n in enumerate(names) if n in ("sky", "wall", "ground")}
    assert bound.fuse == stuff_labels
    segments_seen = fused = 0
    for image in images():
        size = tuple(image.shape[-2:])
        prediction = bound(image[None])[0]
        with torch.no_grad():
            raw = module.net(**bound.encode([image]))
        reference = module.processor.post_process_panoptic_segmentation(raw, target_sizes=[size], **LOOSE)[0]
        expected_map = reference["segmentation"].long().clamp(min=0)
        expected = {}
        first = {}
        for info in reference["segments_info"]:  # merge stuff by hand, in the processor's segment order
            if info["label_id"] in stuff_labels and info["label_id"] in first:
                expected_map[expected_map == info["id"]] = first[info["label_id"]]
                fused += 1
                continue
            first[info["label_id"]] = info["id"]
            expected[info["id"]] = by_name[names[info["label_id"]]]
        assert torch.equal(prediction.segment_map, expected_map)
        assert {s["id"]: s["category_id"] for s in prediction.segments} == expected
        assert len(prediction.segments) == len(expected) and set(torch.unique(expected_map).tolist()) <= {0, *expected}
        segments_seen += len(expected)
    return segments_seen, fused


def test_mask2former_panoptic_equals_the_processors_segments():
    module = loaded(mask2former(NAMES), "panoptic", SMALL_INPUT, post_process=LOOSE).module
    spread(module.net)
    segments, fused = check_panoptic(module, NAMES)
    assert segments >= 6 and fused >= 1


def test_oneformer_from_a_saved_folder(tmp_path):
    """(A random OneFormer gives every query one label, its first: a thing here, so its segments stay apart.)"""
    names = NAMES[3:] + NAMES[:3]
    folder = save_oneformer(tmp_path / "oneformer", names)
    spec = ModelSpec(name="oneformer", source="hf", arch=str(folder), pretrained=True, output="panoptic",
                     kwargs={"post_process": LOOSE})
    model = load_model(spec)
    assert model.weights == f"hf-local:{folder}" and model.family == "transformer" and len(model.weights_sha256) == 64
    segments, _ = check_panoptic(model.module, names)
    assert segments >= 6
    semantic = load_model(ModelSpec(name="o", source="hf", arch=str(folder), pretrained=True,
                                    output="semantic_logits")).module
    image = images()[2]
    with torch.no_grad():
        raw = semantic.net(**semantic.encode([image]))
    reference = semantic.processor.post_process_semantic_segmentation(raw, target_sizes=[tuple(image.shape[-2:])])
    assert torch.equal(predict_labels(semantic(image[None])[0], tuple(image.shape[-2:])), reference[0])


def test_label_mapping_by_names_order_or_ids():
    labels = dict(enumerate(NAMES))
    assert label_mapping(labels, CATEGORIES, "names") == {0: 12, 1: 15, 2: 20, 3: 1, 4: 2, 5: 3, 6: 5, 7: 7}
    assert label_mapping(labels, CATEGORIES, "order") == {i: c["id"] for i, c in enumerate(CATEGORIES)}
    assert label_mapping({1: "a", 12: "b"}, CATEGORIES, "ids") == {1: 1, 12: 12}
    with pytest.raises(ValueError, match="model label 'LABEL_0' is not a category name"):
        label_mapping({0: "LABEL_0"}, CATEGORIES, "names")
    with pytest.raises(ValueError, match="model has 2 labels and the dataset 8 categories"):
        label_mapping({0: "a", 1: "b"}, CATEGORIES, "order")
    with pytest.raises(ValueError, match="label id 4 is not a category id"):
        label_mapping({4: "x"}, CATEGORIES, "ids")


@pytest.mark.parametrize("entry, message", [
    ({"source": "hf", "arch": "x"}, "source 'hf' needs 'output'"),
    ({"source": "timm", "arch": "resnet18", "output": "panoptic"}, "'output' applies to source hf only"),
    ({"source": "hf", "arch": "x", "output": "panoptic", "pretrained": True, "kwargs": {"thresh": 1}}, "unknown key 'thresh'"),
    ({"source": "hf", "arch": "x", "output": "panoptic", "config": {"num_labels": 3}},
     "config needs its model_type"),
    ({"source": "hf", "arch": "x", "output": "panoptic", "config": segformer(NAMES)},
     "segformer is a semantic segmenter: use output semantic_logits"),
    ({"source": "hf", "arch": "x", "output": "panoptic", "pretrained": True,
      "kwargs": {"post_process": {"top_k": 3}}},
     "kwargs.post_process: unknown key 'top_k'"),
    ({"source": "hf", "arch": "x", "output": "semantic_logits", "pretrained": True, "num_classes": 3}, "do not apply to hf segmenters"),
])
def test_entry_mistakes_are_one_line_suite_errors(write_suite, entry, message):
    suite = {"name": "t", "version": 1, "models": [{"name": "m", **entry}],
             "datasets": [{"name": "s", "kind": "scenes", "target": "panoptic"}], "tasks": [{"kind": "panoptic"}]}
    with pytest.raises(SuiteError, match=message) as caught:
        load_suite(str(write_suite(suite)))
    assert "\n" not in str(caught.value) and "suite.yaml:" in str(caught.value)


def test_weights_identity_is_known_before_loading(tmp_path):
    import transformers

    from harness.models.loaders import weights_identity

    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    local = ModelSpec(name="m", source="hf", arch=str(folder), pretrained=True, output="panoptic")
    before = weights_identity(local)
    (folder / "model.safetensors").write_bytes(b"weights")
    assert weights_identity(local) != before and len(before) == 64
    hub = ModelSpec(name="m", source="hf", arch="facebook/mask2former-swin-tiny-coco-panoptic", pretrained="a1b2c3",
                    output="panoptic")
    assert weights_identity(hub) == (f"hf:facebook/mask2former-swin-tiny-coco-panoptic@a1b2c3:"
                                     f"transformers {transformers.__version__}")
    assert weights_identity(ModelSpec(name="m", source="hf", arch="x", output="panoptic")).startswith("random-init:")
