"""PGD wall time: the harness's PGD task vs bare torchattacks.PGD on the same model, batch and steps, same run.

    python benchmarks/bench_pgd.py [--model resnet_digits] [--n 128] [--batch-size 64] [--steps 10] [--repeats 3]

Bare: images already decoded into tensors; per batch a clean forward, ``torchattacks.PGD(...)(x, y)`` and a
forward on the adversarial images: the least code that yields the same clean and robust accuracy.
Harness: ``PGDTask.run`` (flags off) on a JobContext: data loading, threat-model check, per-batch state
files and metric accumulation included. The samples are ones the model classifies correctly, so both
attack the same images (the harness skips misclassified ones). Ratio = harness time / bare time (goal
<= 1.02), best of N interleaved repeats. Also printed: the extra cost of the sanity flags.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torchattacks

import harness.plugins  # noqa: F401
from harness.data.base import SubsetSource
from harness.data.digits import DigitsSource
from harness.data.loader import make_loader
from harness.models.loaders import load_model
from harness.robustness.attacks import step_size
from harness.specs import ModelSpec
from harness.tasks.adversarial import PGDTask
from harness.tasks.base import JobContext

EPS = 8 / 255


def correctly_classified(model, n: int) -> SubsetSource:
    source = DigitsSource("test")
    keep = []
    with torch.no_grad():
        for batch in make_loader(source, model.preprocess, 256):
            hits = model.module(batch.images).argmax(-1) == batch.labels
            keep += batch.indices[hits].tolist()
    return SubsetSource(source, keep[:n], f"first {n} correctly classified")


def bare_seconds(model, batches, steps: int) -> float:
    start = time.perf_counter()
    for images, labels in batches:
        with torch.no_grad():
            clean = model(images).argmax(-1) == labels
        adv = torchattacks.PGD(model, eps=EPS, alpha=step_size(EPS, steps), steps=steps, random_start=True)(images, labels)
        with torch.no_grad():
            (clean & (model(adv).argmax(-1) == labels)).sum()
    return time.perf_counter() - start


def harness_seconds(model, source, batch_size: int, steps: int, flags: bool) -> float:
    task = PGDTask(PGDTask.Params(eps=[EPS], steps=steps, random_start=True, flags=flags))
    ctx = JobContext(model=model, source=source, device=torch.device("cpu"), batch_size=batch_size, seed=0,
                     state_dir=Path(tempfile.mkdtemp()) / "state", show_progress=False)
    start = time.perf_counter()
    task.run(ctx)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_digits")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = load_model(ModelSpec(name=args.model, source="zoo"))
    source = correctly_classified(model, args.n)
    batches = [(b.images, b.labels) for b in make_loader(source, model.preprocess, args.batch_size)]
    bare_seconds(model.module, batches[:1], 1)  # warm-up
    bare, ours, flagged = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_seconds(model.module, batches, args.steps))
        ours.append(harness_seconds(model, source, args.batch_size, args.steps, flags=False))
        flagged.append(harness_seconds(model, source, args.batch_size, args.steps, flags=True))
    print(f"model {args.model}, {len(source)} images, batch {args.batch_size}, PGD Linf 8/255 x {args.steps} steps, "
          f"{torch.get_num_threads()} threads")
    print(f"bare torchattacks {min(bare):.3f}s  harness {min(ours):.3f}s  ratio {min(ours) / min(bare):.3f} "
          f"(goal <= 1.02)")
    print(f"harness with sanity flags {min(flagged):.3f}s  ratio {min(flagged) / min(bare):.3f}")


if __name__ == "__main__":
    main()
