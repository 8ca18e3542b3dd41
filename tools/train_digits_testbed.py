"""Train the embedded digits testbed (harness/robustness/digits_testbed.py) and write its results CSV.

Seeded and CPU-only (a minute or so on 2 cores): each model trains with Adam on the embedded digits' train
split for its number of epochs, its float32 weights go to harness/testbeds/digits/<name>.safetensors, and
the SAVED weights' top-1 on the handwritten test split and on each printed-digits level goes to
harness/testbeds/digits/results.csv (one row per model and shift).

    python tools/train_digits_testbed.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.data.digits import digits_arrays  # noqa: E402
from harness.data.printed_digits import PrintedDigitsSource  # noqa: E402
from harness.robustness import digits_testbed as testbed  # noqa: E402

BATCH = 64
LEARNING_RATE = 1e-3


def train(spec: testbed.TestbedModel, images: np.ndarray, labels: np.ndarray) -> torch.nn.Module:
    model = spec.build()
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    x, y = testbed.grey_tensor(images), torch.from_numpy(labels)
    order = torch.Generator().manual_seed(spec.seed)
    model.train()
    for _ in range(spec.epochs):
        for batch in torch.randperm(len(y), generator=order).split(BATCH):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model.eval()


def main() -> None:
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(1)
    train_x, train_y = digits_arrays()["train"]
    test_x, test_y = digits_arrays()["test"]
    shifted = {level: (source.images, source.labels)
               for level in testbed.SHIFTS for source in [PrintedDigitsSource(level)]}
    testbed.DIGITS_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in testbed.MODELS:
        model = train(spec, train_x, train_y)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(spec.weights))
        saved = spec.build()
        saved.load_state_dict(load_file(str(spec.weights)))
        id_accuracy = float((testbed.predictions(saved, test_x) == test_y).mean())
        for shift, (x, y) in shifted.items():
            rows.append({"model": spec.name, "shift": shift, "id_accuracy": id_accuracy,
                         "shifted_accuracy": float((testbed.predictions(saved, x) == y).mean()),
                         "family": spec.family})
        print(f"{spec.name}: id {id_accuracy:.4f} "
              + " ".join(f"{r['shift']} {r['shifted_accuracy']:.4f}" for r in rows[-len(shifted):]))
    pd.DataFrame(rows).to_csv(testbed.RESULTS, index=False, float_format="%.6f")
    print(f"wrote {testbed.RESULTS}")


if __name__ == "__main__":
    main()
