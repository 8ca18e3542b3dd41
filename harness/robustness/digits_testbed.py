"""The embedded digits testbed: small seeded models of varied accuracy, whose (handwritten, printed) accuracy
pairs are the trend the zoo is placed against on the printed-digits shift.

Trained by ``tools/train_digits_testbed.py`` on the embedded digits' train split (harness/data/digits.py),
the weights and each model's accuracies ship in harness/testbeds/digits/ (``results.csv`` in the testbed
format of harness/robustness/testbeds.py). The models read the 32x32 images as one grey channel in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

DIGITS_DIR = Path(__file__).resolve().parent.parent / "testbeds" / "digits"
RESULTS = DIGITS_DIR / "results.csv"
ID_DATASET = ("digits", "test")
SHIFTS = ("printed", "printed-hard")  # the printed-digits levels (harness/data/printed_digits.py)


@dataclass(frozen=True)
class TestbedModel:
    name: str
    family: str  # linear | mlp | cnn
    width: int
    epochs: int
    seed: int

    def build(self) -> nn.Module:
        torch.manual_seed(self.seed)
        if self.family == "linear":
            return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
        if self.family == "mlp":
            return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, self.width), nn.ReLU(), nn.Linear(self.width, 10))
        return nn.Sequential(
            nn.Conv2d(1, self.width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(self.width, 2 * self.width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * self.width * 8 * 8, 10))

    @property
    def weights(self) -> Path:
        return DIGITS_DIR / f"{self.name}.safetensors"


MODELS = (
    TestbedModel("linear-e1", "linear", 0, 1, 0),
    TestbedModel("linear-e8", "linear", 0, 8, 1),
    TestbedModel("mlp16-e2", "mlp", 16, 2, 2),
    TestbedModel("mlp64-e4", "mlp", 64, 4, 3),
    TestbedModel("mlp128-e20", "mlp", 128, 20, 4),
    TestbedModel("cnn4-e1", "cnn", 4, 1, 5),
    TestbedModel("cnn4-e4", "cnn", 4, 4, 6),
    TestbedModel("cnn8-e3", "cnn", 8, 3, 7),
    TestbedModel("cnn16-e8", "cnn", 16, 8, 8),
    TestbedModel("cnn16-e20", "cnn", 16, 20, 9),
    TestbedModel("mlp256-e60", "mlp", 256, 60, 10),
    TestbedModel("cnn32-e40", "cnn", 32, 40, 11),
)


def grey_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x 32 x 32 x 3 (grey replicated to RGB) to float N x 1 x 32 x 32 in [0, 1]."""
    return torch.from_numpy(images[..., 0].astype(np.float32) / 255.0).unsqueeze(1)


@torch.no_grad()
def predictions(model: nn.Module, images: np.ndarray) -> np.ndarray:
    model.eval()
    return model(grey_tensor(images)).argmax(dim=1).numpy()


def load(spec: TestbedModel) -> nn.Module:
    """A shipped testbed model with its weights (safetensors: no pickles)."""
    from safetensors.torch import load_file

    model = spec.build()
    model.load_state_dict(load_file(str(spec.weights)))
    return model.eval()
