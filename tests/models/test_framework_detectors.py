"""torchvision and Hugging Face detector adapters: random-init models' outputs become canonical detections
(shapes, dtypes, original-image pixels, dataset category ids); the HF adapter equals the processor's own
post-processing; label mapping rules; one-line errors."""
from __future__ import annotations

import sys

import pytest
import torch

from framework_detectors import HF_CONFIGS, SCENE_CATEGORIES, TORCHVISION_ARCHS, tiny_hf, tiny_torchvision
from harness.data.scenes import ScenesSource
from harness.models.detection_adapter import LabelMappingError, category_lookup
from harness.models.loaders import load_model
from harness.schema import SuiteError
from harness.specs import ModelSpec
from harness.suite import load_suite

SIZES = [(96, 160), (144, 96)]  # (H, W) of the two test images


@pytest.fixture(scope="module")
def images() -> list[torch.Tensor]:
    """Two embedded scenes, rescaled to a landscape and a portrait size, as [0, 1] tensors."""
    source = ScenesSource("test", size=2)
    out = []
    for i, size in enumerate(SIZES):
        pixels = torch.from_numpy(source.scene(i).image).permute(2, 0, 1)[None].float() / 255
        out.append(torch.nn.functional.interpolate(pixels, size=size, mode="bilinear", antialias=True)[0].clamp(0, 1))
    return out


def spec(entry: dict) -> ModelSpec:
    return ModelSpec(**entry)


def check_canonical(detections, images, with_masks: bool = False) -> None:
    category_ids = {c["id"] for c in SCENE_CATEGORIES}
    assert len(detections) == len(images)
    for d, image in zip(detections, images):
        height, width = image.shape[-2:]
        k = len(d.scores)
        assert k > 0
        assert d.boxes.shape == (k, 4) and d.boxes.dtype == torch.float32 and d.scores.dtype == torch.float32
        assert d.labels.shape == (k,) and d.labels.dtype == torch.int64
        assert set(d.labels.tolist()) <= category_ids
        if with_masks:
            assert d.masks.shape == (k, height, width) and d.masks.dtype == torch.bool
        else:
            assert d.masks is None


@pytest.mark.parametrize("arch", TORCHVISION_ARCHS)
def test_torchvision_detectors_give_canonical_detections_in_original_pixels(arch, images, one_thread):
    torch.manual_seed(0)
    model = load_model(spec(tiny_torchvision(arch)))
    assert model.output_kind == "detections" and model.weights == "random-init" and model.family == "cnn"
    policy = model.pipeline
    assert policy["adapter"] == "torchvision" and policy["labels"].startswith("index")
    assert policy["score_threshold"] == 0.001
    if arch.startswith("ssd"):
        assert policy["fixed_size"] == [320, 320]
    else:
        assert policy["min_size"] == [64] and policy["max_size"] == 128
    assert model.preprocess.crop_mode == "none"  # the images reach the network at their own size
    bound = model.module.for_categories(SCENE_CATEGORIES)
    with torch.no_grad():
        detections = bound(images)
        native = model.module.net(images)  # torchvision's own output
    check_canonical(detections, images, with_masks=arch.startswith("mask"))
    ids = [c["id"] for c in SCENE_CATEGORIES]
    beyond = []  # right edges relative to the width the network's resize gave the image (64 px shorter side)
    for d, own, image in zip(detections, native, images):
        height, width = image.shape[-2:]
        keep = own["labels"] > 0  # index 0 is torchvision's background
        assert torch.equal(d.boxes, own["boxes"][keep]) and torch.equal(d.scores, own["scores"][keep])
        assert d.labels.tolist() == [ids[k - 1] for k in own["labels"][keep].tolist()]
        assert (d.boxes[:, 0] >= 0).all() and (d.boxes[:, 2] <= width).all()  # torchvision maps to the given size
        assert (d.boxes[:, 1] >= 0).all() and (d.boxes[:, 3] <= height).all()
        beyond.append(float(d.boxes[:, 2].max()) / (width * 64 / min(height, width)))
    if not arch.startswith("ssd"):  # boxes come back at the original size, past the resized image's edge
        assert max(beyond) > 1

@pytest.mark.parametrize("model_type", sorted(set(HF_CONFIGS) - {"mask2former"}))
def test_hf_adapter_equals_the_processors_own_post_processing(model_type, images, one_thread):
    torch.manual_seed(0)
    model = load_model(spec(tiny_hf(model_type, model_type)))
    assert model.output_kind == "detections" and model.weights == "random-init"
    assert model.family == ("transformer" if model_type == "yolos" else "hybrid")
    adapter = model.module.for_categories(SCENE_CATEGORIES)
    with torch.no_grad():
        raw = adapter.raw(images)
        ours = [adapter.relabel(d) for d in adapter.decode(raw, SIZES)]
        theirs = adapter.processor.post_process_object_detection(raw, threshold=0.0, target_sizes=SIZES)
        whole = adapter(images)
    check_canonical(whole, images)
    ids = [c["id"] for c in SCENE_CATEGORIES]
    for d, again, reference, (height, width) in zip(ours, whole, theirs, SIZES):
        assert len(d.scores) == len(reference["scores"]) > 0
        assert torch.equal(d.boxes, reference["boxes"]) and torch.equal(d.scores, reference["scores"])
        assert d.labels.tolist() == [ids[k] for k in reference["labels"].tolist()]
        assert torch.equal(again.boxes, d.boxes) and torch.equal(again.labels, d.labels)
        # boxes are in the original image's pixels (DETR-style boxes are not clipped: their centres lie inside)
        centres = (d.boxes[:, :2] + d.boxes[:, 2:]) / 2
        assert (centres >= -1e-3).all() and (centres[:, 0] <= width + 1e-3).all()
        assert (centres[:, 1] <= height + 1e-3).all()


def test_mask2former_instances_equal_the_processors_own_post_processing(images, one_thread):
    torch.manual_seed(0)
    model = load_model(spec(tiny_hf("m2f", "mask2former")))
    assert model.pipeline["post_process"] == "post_process_instance_segmentation" and model.family == "hybrid"
    adapter = model.module.for_categories(SCENE_CATEGORIES)
    with torch.no_grad():
        raw = adapter.raw(images)
        ours = [adapter.relabel(d) for d in adapter.decode(raw, SIZES)]
        theirs = adapter.processor.post_process_instance_segmentation(raw, threshold=0.0, target_sizes=SIZES,
                                                                      return_binary_maps=True)
        whole = adapter(images)
    check_canonical(whole, images, with_masks=True)
    ids = [c["id"] for c in SCENE_CATEGORIES]
    for d, reference in zip(ours, theirs):
        info = reference["segments_info"]
        assert torch.equal(d.masks, reference["segmentation"] == 1)
        assert torch.equal(d.scores, torch.tensor([s["score"] for s in info], dtype=torch.float32))
        assert d.labels.tolist() == [ids[s["label_id"]] for s in info]
        for box, mask in zip(d.boxes, d.masks):  # each box is its mask's extent (COCO's: right/bottom exclusive)
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mask2former_instances_on_cuda(images):
    """transformers' instance post-processing indexes a segment map it makes on the CPU with the query masks, which
    fails for CUDA masks; the adapter hands it the queries on the CPU."""
    torch.manual_seed(0)
    model = load_model(spec(tiny_hf("m2f", "mask2former"))).to_device(torch.device("cuda"))
    adapter = model.module.for_categories(SCENE_CATEGORIES)
    with torch.no_grad():
        detections = adapter([image.cuda() for image in images])
    check_canonical(detections, images, with_masks=True)


def test_hf_pipeline_and_size_policy_are_recorded(one_thread):
    model = load_model(spec(tiny_hf("detr", "detr")))
    provenance = model.provenance()
    assert provenance["pipeline"]["processor"] == "DetrImageProcessor"
    assert provenance["pipeline"]["size"] == {"shortest_edge": 64, "longest_edge": 128}
    assert provenance["pipeline"]["score_threshold"] == 0.0 and provenance["preprocess"]["crop_mode"] == "none"


COCO_NAMES = ["__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
              "traffic light", "fire hydrant", "N/A", "stop sign"]  # torchvision's COCO layout, index = category id


def test_labels_map_by_name_when_the_model_knows_its_classes():
    coco = [{"id": i, "name": n} for i, n in enumerate(COCO_NAMES) if n not in ("__background__", "N/A")]
    lookup = category_lookup(dict(enumerate(COCO_NAMES)), 1, len(COCO_NAMES) - 1, coco, "m")
    assert lookup == {i: i for i in range(1, len(COCO_NAMES)) if i != 12}  # COCO ids kept, N/A dropped
    shuffled = [{"id": 100 + i, "name": n.upper()} for i, n in enumerate(["car", "person"])]
    assert category_lookup(dict(enumerate(COCO_NAMES)), 1, 13, shuffled, "m") == {3: 100, 1: 101}


def test_labels_map_by_index_for_random_init_models():
    placeholders = {0: "LABEL_0", 1: "LABEL_1"}
    categories = [{"id": 9, "name": "b"}, {"id": 4, "name": "a"}]
    assert category_lookup(placeholders, 0, 2, categories, "m") == {0: 4, 1: 9}  # HF counts from 0
    assert category_lookup(None, 1, 2, categories, "m") == {1: 4, 2: 9}  # torchvision: 0 is background
    with pytest.raises(LabelMappingError, match="predicts 3 classes but the dataset has 2 categories"):
        category_lookup(None, 1, 3, categories, "m")
    with pytest.raises(LabelMappingError, match="none of its class names"):
        category_lookup({0: "cat", 1: "dog"}, 0, 2, categories, "m")


def test_a_random_init_torchvision_model_in_cocos_layout_keeps_coco_ids(one_thread):
    model = load_model(spec({**tiny_torchvision("retinanet_resnet50_fpn_v2"), "num_classes": None}))
    assert model.num_classes == 91 and model.module.label_names[1] == "person"
    coco = [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}]
    assert model.module.for_categories(coco).lookup[[1, 90]].tolist() == [1, 90]


def test_unknown_torchvision_architecture_is_a_one_line_suite_error(write_suite):
    suite = {"name": "t", "version": 1, "models": [{"name": "fasterrcnn_resnet50_fpn_v3", "source": "torchvision"}],
             "datasets": [{"name": "s", "kind": "scenes", "split": "test"}], "tasks": [{"kind": "detection"}]}
    with pytest.raises(SuiteError, match=r"unknown torchvision architecture 'fasterrcnn_resnet50_fpn_v3' "
                                         r"\(did you mean fasterrcnn_resnet50_fpn_v2") as info:
        load_suite(str(write_suite(suite)))
    assert "\n" not in str(info.value)


def test_hf_without_transformers_validates_and_the_loader_names_the_install_hint(write_suite, monkeypatch):
    """Validation passes without the extra (running is refused: tests/test_extras.py); a direct load says why."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    suite = {"name": "t", "version": 1, "models": [tiny_hf("d", "detr")],
             "datasets": [{"name": "s", "kind": "scenes", "split": "test"}], "tasks": [{"kind": "detection"}]}
    assert [m.name for m in load_suite(str(write_suite(suite))).spec.models] == ["d"]
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails: the loader names the install
    with pytest.raises(ImportError, match=r'source hf needs the transformers package: pip install "visionbench-harness\[hf\]"'):
        load_model(spec(tiny_hf("d", "detr")))


def test_hf_entries_need_weights_or_a_config(write_suite):
    suite = {"name": "t", "version": 1, "models": [{"name": "d", "source": "hf", "arch": "facebook/detr-resnet-50",
                                                    "output": "detections"}],
             "datasets": [{"name": "s", "kind": "scenes", "split": "test"}], "tasks": [{"kind": "detection"}]}
    with pytest.raises(SuiteError, match="needs 'pretrained: true'"):
        load_suite(str(write_suite(suite)))


def test_a_saved_hf_folder_loads_offline_relative_to_the_suite(tmp_path, write_suite, images, one_thread):
    """``pretrained: true`` with a ``save_pretrained`` folder: the real from_pretrained path, offline; the
    folder is relative to the suite file and its contents are the weights' identity in the cache key."""
    from harness.models.loaders import weights_identity

    torch.manual_seed(0)
    original = load_model(spec(tiny_hf("detr", "detr")))
    original.module.net.save_pretrained(tmp_path / "detr-folder")
    original.module.processor.save_pretrained(tmp_path / "detr-folder")
    suite = {"name": "t", "version": 1, "models": [{"name": "d", "source": "hf", "arch": "detr-folder",
                                                    "pretrained": True, "output": "detections"}],
             "datasets": [{"name": "s", "kind": "scenes", "split": "test"}], "tasks": [{"kind": "detection"}]}
    entry = load_suite(str(write_suite(suite))).spec.models[0]
    assert entry.architecture == str((tmp_path / "detr-folder").resolve())
    loaded = load_model(entry)
    assert loaded.weights == f"hf-local:{entry.architecture}" and loaded.weights_sha256
    assert loaded.pipeline["size"] == original.pipeline["size"]
    with torch.no_grad():
        ours, theirs = loaded.module(images), original.module(images)
    for a, b in zip(ours, theirs):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    before = weights_identity(entry)
    (tmp_path / "detr-folder" / "note.txt").write_text("changed")
    assert weights_identity(entry) != before
