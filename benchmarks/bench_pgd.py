"""PGD wall time: the harness's PGD task vs bare torchattacks.PGD on the same model, batch and steps, same run.

    python benchmarks/bench_pgd.py [--model resnet_digits] [--n 128] [--batch-size 64] [--steps 10]
        [--repeats 3] [--quick]

Bare: images already decoded into tensors; per batch a clean forward, ``torchattacks.PGD(...)(x, y)`` and a
forward on the adversarial images: the least code that yields the same clean and robust accuracy.
Harness: ``run_task(PGDTask, ctx, state_dir=...)`` (flags off) on a JobContext: data loading, threat-model
check, per-batch state files and metric accumulation included. The samples are ones the model classifies
correctly, so both attack the same images (the harness skips misclassified ones). Ratio = harness time /
bare time (goal <= 1.02), best of N interleaved repeats. Also printed: the extra cost of the sanity flags
(no goal).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402
import torchattacks  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402

import harness.plugins  # noqa: E402,F401
from harness.data.base import SubsetSource  # noqa: E402
from harness.data.digits import DigitsSource  # noqa: E402
from harness.data.loader import make_loader  # noqa: E402
from harness.loop import run_task  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.robustness.attacks import step_size  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402
from harness.tasks.adversarial import PGDTask  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402

EPS = 8 / 255
GOAL = 1.02


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


def harness_seconds(model, source, batch_size: int, steps: int, flags: bool, blackbox_queries: int = 5000) -> float:
    task = PGDTask(PGDTask.Params(eps=[EPS], steps=steps, random_start=True, flags=flags,
                                  blackbox_queries=blackbox_queries))
    ctx = JobContext(model=model, source=source, device=torch.device("cpu"), batch_size=batch_size, seed=0,
                     show_progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        run_task(task, ctx, state_dir=Path(scratch) / "state")  # every finished batch saved, as the runner does
        return time.perf_counter() - start


def configure(parser) -> None:
    parser.add_argument("--model", default="resnet_digits")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blackbox-queries", type=int, default=PGDTask.Params(eps=[EPS]).blackbox_queries,
                        help="the sanity flags' Square budget (the task's default)")


def measure(args) -> list[Figure]:
    model = load_model(ModelSpec(name=args.model, source="zoo"))
    source = correctly_classified(model, args.n)
    batches = [(b.images, b.labels) for b in make_loader(source, model.preprocess, args.batch_size)]
    bare_seconds(model.module, batches[:1], 1)  # warm-up
    bare, ours, flagged = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_seconds(model.module, batches, args.steps))
        ours.append(harness_seconds(model, source, args.batch_size, args.steps, flags=False))
        flagged.append(harness_seconds(model, source, args.batch_size, args.steps, flags=True,
                                       blackbox_queries=args.blackbox_queries))
    print(f"model {args.model}, {len(source)} images, batch {args.batch_size}, PGD Linf 8/255 x {args.steps} steps, "
          f"{torch.get_num_threads()} threads")
    print(f"bare torchattacks {min(bare):.3f}s  harness {min(ours):.3f}s  ratio {min(ours) / min(bare):.3f} "
          f"(goal <= {GOAL})")
    print(f"harness with sanity flags (Square {args.blackbox_queries} queries) {min(flagged):.3f}s  "
          f"ratio {min(flagged) / min(bare):.3f}")
    what = f"{args.model}, {len(source)} img, {args.steps} steps"
    return [
        Figure(f"wall harness / bare torchattacks ({what})", min(ours) / min(bare), at_most=GOAL,
               detail=f"best of {args.repeats}: {min(ours):.2f} s vs {min(bare):.2f} s"),
        Figure(f"wall with sanity flags / bare ({what}, Square {args.blackbox_queries} queries)",
               min(flagged) / min(bare), detail=f"best of {args.repeats}: {min(flagged):.2f} s"),
    ]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"n": 16, "batch_size": 16, "steps": 2, "repeats": 1,
                                                       "blackbox_queries": 20})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
