"""Model adapters: families, pixel-space wrapper, checkpoints, sources, the zoo."""
from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from harness.models.checkpoint import CheckpointError, file_sha256, read_state_dict
from harness.models.family import family_from_modules, infer_family
from harness.models.loaders import load_model
from harness.models.wrapper import PixelModel, as_logits
from harness.specs import ModelSpec
from harness.zoo import METADATA_FILE, ZOO_MODELS


@pytest.mark.parametrize("arch,family", [
    ("resnet50", "cnn"), ("efficientnet_b0", "cnn"), ("mobilenetv3_large_100", "cnn"), ("convnext_tiny", "cnn"),
    ("vit_base_patch16_224", "transformer"), ("deit_small_patch16_224", "transformer"),
    ("swin_tiny_patch4_window7_224", "transformer"), ("beit_base_patch16_224", "transformer"),
    ("eva02_tiny_patch14_224", "transformer"), ("coatnet_0_rw_224", "hybrid"), ("maxvit_tiny_tf_224", "hybrid"),
    ("levit_128", "hybrid"), ("mobilevit_s", "hybrid"),
])
def test_family_is_inferred_from_the_architecture_name(arch, family):
    assert infer_family(arch, nn.Identity()) == family


def test_family_falls_back_to_the_modules_for_unknown_names():
    attention = nn.Sequential(nn.Conv2d(3, 8, 3), nn.MultiheadAttention(8, 2))
    assert family_from_modules(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())) == "cnn"
    assert family_from_modules(nn.Sequential(nn.MultiheadAttention(8, 2))) == "transformer"
    assert family_from_modules(attention) == "hybrid"


def test_pixel_model_normalises_inside_and_adapts_outputs():
    class TupleNet(nn.Module):
        def forward(self, x):
            return (x.mean(dim=(2, 3)), "aux")

    wrapped = PixelModel(TupleNet(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    pixels = torch.full((2, 3, 4, 4), 0.75)
    assert torch.allclose(wrapped(pixels), torch.ones(2, 3))  # (0.75 - 0.5) / 0.25
    assert as_logits({"logits": torch.zeros(1, 5)}).shape == (1, 5)
    with pytest.raises(TypeError, match="cannot read logits"):
        as_logits("nope")


def test_checkpoint_layouts_are_unwrapped(tmp_path):
    net = timm.create_model("resnet18", num_classes=4)
    state = net.state_dict()
    nested = tmp_path / "ddp.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, nested)
    loaded = read_state_dict(nested)
    assert loaded.keys() == state.keys()
    safetensors_path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(safetensors_path))
    spec = ModelSpec(name="r", source="checkpoint", arch="resnet18", num_classes=4, checkpoint=safetensors_path)
    model = load_model(spec)
    assert model.weights_sha256 == file_sha256(safetensors_path)
    assert torch.equal(model.module.net.fc.weight, state["fc.weight"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="bad.safetensors: not a valid safetensors file"):
        read_state_dict(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        read_state_dict(tmp_path / "missing.pt")


def test_timm_model_preprocessing_comes_from_its_pretrained_config():
    model = load_model(ModelSpec(name="deit_small_patch16_224", source="timm"))
    cfg = timm.create_model("deit_small_patch16_224").pretrained_cfg
    assert model.preprocess.input_size == tuple(cfg["input_size"])
    assert model.preprocess.crop_pct == cfg["crop_pct"] and model.preprocess.interpolation == cfg["interpolation"]
    assert model.family == "transformer" and model.num_classes == 1000 and model.weights == "random-init"


def test_torchvision_source_builds_the_named_model():
    model = load_model(ModelSpec(name="tv_resnet18", source="torchvision", arch="resnet18", num_classes=10))
    assert model.family == "cnn" and model.num_classes == 10
    assert model.module(torch.rand(1, 3, 64, 64)).shape == (1, 10)


def test_zoo_ships_two_models_per_camp_with_recorded_recipes_and_hashes():
    metadata = json.loads(METADATA_FILE.read_text())
    families = {}
    total_bytes = 0
    for name, entry in ZOO_MODELS.items():
        families.setdefault(entry.family, []).append(name)
        assert metadata[name]["weights_sha256"] == file_sha256(entry.weights_file)
        assert metadata[name]["recipe"]["seed"] is not None
        total_bytes += entry.weights_file.stat().st_size
    assert len(families["cnn"]) >= 2 and len(families["transformer"]) >= 2
    assert total_bytes <= 10 * 2**20
    measured = {name: measured_top1(entry) for name, entry in ZOO_MODELS.items()}
    for name, top1 in measured.items():  # the shipped weights still score what zoo.json says (1 image in 450)
        assert abs(top1 - metadata[name]["test_top1"]) <= 1 / 450 + 1e-6, (name, top1)
    best = {fam: max(measured[n] for n in names) for fam, names in families.items()}
    assert best["cnn"] >= 0.97 and best["transformer"] >= 0.90


def measured_top1(entry) -> float:
    """Top-1 on the digits test split, measured here: sklearn's digits rebuilt as the data module documents
    (scaled to [0, 1], x4 bilinear, uint8), the zoo network called directly with its normalisation."""
    from safetensors.torch import load_file
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype("float32") / 16.0).unsqueeze(1)
    big = torch.nn.functional.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    pixels = (big.clamp(0, 1) * 255).round() / 255
    _, test = train_test_split(range(len(digits.target)), test_size=0.25, random_state=0, stratify=digits.target)
    images, labels = pixels[test].repeat(1, 3, 1, 1), torch.as_tensor(digits.target[test])
    cfg = entry.pretrained_cfg()
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    net = entry.build()
    net.load_state_dict(load_file(str(entry.weights_file)))
    with torch.inference_mode():
        predictions = net.eval()((images - mean) / std).argmax(1)
    return float((predictions == labels).float().mean())


def test_corrupt_pt_is_called_corrupt_not_untrusted_even_when_trusted(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint " * 20)
    torch.save({"w": torch.zeros(3)}, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((tmp_path / "good.pt").read_bytes()[:300])
    for path in (garbage, truncated):
        for trust in (False, True):
            with pytest.raises(CheckpointError) as info:
                read_state_dict(path, trust_pickle=trust)
            message = str(info.value)
            assert message.startswith(f"{path}: cannot read checkpoint: corrupt or not a PyTorch file"), message
            assert "untrusted" not in message and "\n" not in message


def test_pickle_with_objects_is_refused_unless_trusted(tmp_path):
    import argparse

    path = tmp_path / "with_args.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="refusing to load an untrusted pickle.*trust_pickle: true"):
        read_state_dict(path)
    assert torch.equal(read_state_dict(path, trust_pickle=True)["w"], torch.ones(2))


def test_state_dict_of_another_architecture_says_how_many_keys_differ(tmp_path):
    path = tmp_path / "resnet34.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet34", num_classes=4).state_dict().items()},
              str(path))
    with pytest.raises(CheckpointError) as info:
        load_model(ModelSpec(name="r", source="checkpoint", arch="resnet18", num_classes=10, checkpoint=path))
    message = str(info.value)
    assert message.startswith(f"{path}: weights do not fit the architecture: ")
    import re

    assert re.search(r"96 key\(s\) unexpected \(first: layer\d\.2\.\S+, \S+, \S+, \.\.\. 93 more\)", message), message
    assert "2 key(s) with another shape (first: fc.weight [4, 512] vs [10, 512], fc.bias [4] vs [10])" in message
    assert "missing" not in message and message.count("layer") <= 4 and "\n" not in message


def test_preprocess_override_and_a_named_timm_config_for_local_weights(tmp_path):
    from harness.schema import Where, build

    net = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    tv = load_model(ModelSpec(name="r", source="checkpoint", arch="resnet18", checkpoint=path,
                              pretrained_cfg="tv_in1k"))
    assert (tv.preprocess.crop_pct, tv.preprocess.interpolation) == (0.875, "bilinear")  # tv_in1k's, not a1_in1k's
    default = load_model(ModelSpec(name="r", source="checkpoint", arch="resnet18", checkpoint=path))
    assert (default.preprocess.crop_pct, default.preprocess.interpolation) == (0.95, "bicubic")
    spec = build(ModelSpec, {"name": "r", "source": "checkpoint", "arch": "resnet18", "checkpoint": str(path),
                             "preprocess": {"input_size": 160, "crop_pct": 1.0, "interpolation": "bilinear",
                                            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
                 Where(tmp_path / "s.yaml", 1, "models[0]"))
    model = load_model(spec)
    assert model.preprocess.input_size == (3, 160, 160) and model.preprocess.crop_pct == 1.0
    assert model.preprocess.mean == (0.5, 0.5, 0.5) and model.preprocess.crop_mode == "center"
    assert torch.equal(model.module.std.flatten(), torch.full((3,), 0.25))  # the override normalises
    assert model.provenance()["preprocess"]["interpolation"] == "bilinear"


def test_num_classes_is_passed_to_timm_when_pretrained(monkeypatch):
    """Pretrained weights with another head size: timm loads the backbone and re-initialises the head."""
    calls = []

    def create_model(name, pretrained=False, **kwargs):
        calls.append((name, pretrained, kwargs))
        return timm.models.create_model(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    model = load_model(ModelSpec(name="resnet18", source="timm", pretrained="a1_in1k", num_classes=10))
    assert calls == [("resnet18.a1_in1k", True, {"num_classes": 10})]
    assert model.num_classes == 10


def test_hub_weights_hash_covers_zero_dim_buffers():
    from harness.models.checkpoint import state_dict_sha256

    net = timm.create_model("resnet18", num_classes=4)  # BatchNorm's num_batches_tracked is a 0-dim int64
    first = state_dict_sha256(net)
    net.bn1.num_batches_tracked += 1
    assert state_dict_sha256(net) != first


def test_torchvision_num_classes_is_not_dropped_when_pretrained():
    """torchvision refuses a head size other than its weights' before downloading anything: loud, not ignored."""
    from harness.models.loaders import declared_num_classes

    spec = ModelSpec(name="r", source="torchvision", arch="resnet18", pretrained="IMAGENET1K_V1", num_classes=10)
    with pytest.raises(ValueError, match="'num_classes' expected value 1000 but got 10"):
        load_model(spec)
    assert declared_num_classes(ModelSpec(name="r", source="torchvision", arch="resnet18", pretrained=True)) == 1000
    assert declared_num_classes(ModelSpec(name="r", source="timm", arch="resnet18", kwargs={"num_classes": 7})) == 7
    assert declared_num_classes(ModelSpec(name="r", source="timm", arch="vit_tiny_patch16_224",
                                          pretrained_cfg="augreg_in21k")) == 21843
    assert declared_num_classes(ModelSpec(name="resnet_digits", source="zoo")) == 10
