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
    best = {fam: max(metadata[n]["test_top1"] for n in names) for fam, names in families.items()}
    assert best["cnn"] >= 0.97 and best["transformer"] >= 0.90
