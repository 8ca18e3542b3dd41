"""Parity with timm's own evaluation pipeline, independent of the harness's loader and model wrapper.

Reference: ``timm.data.resolve_data_config`` + ``timm.data.create_transform`` (resize, centre crop,
ToTensor, Normalize) + ``torchvision.datasets.ImageFolder`` + a DataLoader, feeding the timm network
directly. Harness: ``harness.run.run_suite`` (what ``harness.run_suite`` wraps) on a suite naming the same image folder and the same weights as a
local checkpoint. Full-size scikit-image photos of mixed, non-square, non-160 sizes (grey ones too) go
through both. Logits and top-1 must agree within 1e-5: normalisation applied twice (or not at all), a
different resize, crop or interpolation would all move them far more.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from harness.run import run_suite
from harness.tasks.base import JobContext

# class folder -> full-size photos (height x width): non-square and square, colour and grey, and one
# smaller than the models' 168-pixel resize so it is upsampled.
PHOTOS = {
    "animals": ["chelsea", "astronaut", "camera", "coffee"],  # 300x451, 512x512, 512x512 grey, 400x600
    "things": ["rocket", "coins", "hubble_deep_field", "page"],  # 427x640, 303x384 grey, 872x1000, 191x384 grey
}
MODELS = ["test_resnet", "test_vit"]  # timm configs: 160 px, crop_pct 0.95, bilinear / bicubic, mean = std = 0.5


def write_photos(root: Path) -> Path:
    import skimage.data

    for folder, names in PHOTOS.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            Image.fromarray(getattr(skimage.data, name)()).save(root / folder / f"{name}.png")
    small = np.asarray(Image.open(root / "animals" / "coffee.png"))[100:190, 200:320]  # 90 x 120: upsampled
    Image.fromarray(small).save(root / "animals" / "coffee_detail.png")
    return root


def timm_reference(arch: str, weights: Path, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels from timm's own eval pipeline, the network called directly."""
    from safetensors.torch import load_file
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    net = timm.create_model(arch, num_classes=len(PHOTOS))
    net.load_state_dict(load_file(str(weights)))
    net.eval()
    config = timm.data.resolve_data_config({}, model=net)
    transform = timm.data.create_transform(**config)  # includes Normalize(mean, std)
    loader = DataLoader(ImageFolder(str(root), transform=transform), batch_size=3, shuffle=False)
    logits, labels = [], []
    with torch.inference_mode():
        for images, targets in loader:
            logits.append(net(images))
            labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


@pytest.fixture
def captured_logits(monkeypatch):
    """Record the logits the harness computes in its run (the spy calls the real method and changes nothing)."""
    seen: list[torch.Tensor] = []
    real = JobContext.logits

    def spy(self, images):
        out = real(self, images)
        seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(JobContext, "logits", spy)
    return seen


@pytest.mark.parametrize("arch", MODELS)
def test_harness_matches_timms_own_pipeline_on_full_size_photos(tmp_path, captured_logits, one_thread, arch):
    root = write_photos(tmp_path / "photos")
    torch.manual_seed(0)
    net = timm.create_model(arch, num_classes=len(PHOTOS))
    weights = tmp_path / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))

    suite = {"name": "parity", "version": 1, "defaults": {"batch_size": 3, "device": "cpu"},
             "models": [{"name": arch, "source": "checkpoint", "arch": arch, "checkpoint": str(weights),
                         "num_classes": len(PHOTOS)}],
             "datasets": [{"name": "photos", "kind": "imagefolder", "root": str(root)}],
             "tasks": [{"kind": "classification", "params": {"topk": [1]}}]}
    path = tmp_path / "parity.yaml"
    path.write_text(yaml.safe_dump(suite))
    outcome = run_suite(path, out=tmp_path / "out", progress=False, report=False)
    assert outcome.failed == []

    reference, labels = timm_reference(arch, weights, root)
    ours = torch.cat(captured_logits)
    assert ours.shape == reference.shape == (9, len(PHOTOS))
    assert torch.allclose(ours, reference, rtol=0, atol=1e-5), (ours - reference).abs().max()
    assert torch.equal(ours.argmax(1), reference.argmax(1))
    top1 = outcome.frame.set_index("metric").loc["top1"]
    assert top1["n"] == 9
    assert top1["value"] == pytest.approx(int((reference.argmax(1) == labels).sum()) / 9, abs=1e-12)


def test_the_parity_check_would_catch_double_normalisation(tmp_path):
    """The tolerance is meaningful: normalising twice moves the logits far beyond 1e-5."""
    root = write_photos(tmp_path / "photos")
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=len(PHOTOS)).eval()
    config = timm.data.resolve_data_config({}, model=net)
    image = timm.data.create_transform(**config)(Image.open(root / "animals" / "chelsea.png").convert("RGB"))
    once = net(image[None])
    twice = net(((image - 0.5) / 0.5)[None])
    assert (once - twice).abs().max() > 1e-3
