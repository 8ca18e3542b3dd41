"""Semantic segmentation scoring overhead: ``model(images)`` + ``SemanticEvaluator`` vs a bare ``model(images)``
loop on the same batches, same run.

    python benchmarks/bench_seg_eval.py [--model lraspp_mobilenet_v3_large] [--n 32] [--batch-size 4]
        [--repeats 3] [--quick]

Model: a torchvision segmentation model (random weights, 19 classes; LR-ASPP MobileNetV3 by default, the
cheapest, so the worst case for the ratio), inputs 256 x 512; labels at the original 512 x 1024
(Cityscapes' aspect ratio at half size), so the evaluator resizes every image's 19-channel logits
bilinearly to the label, argmaxes and fills the confusion matrix (on the digest thread, as in the evaluation
loop: ``harness.pipeline.run_overlapped``); merge and compute included.
Data is decoded into tensors before timing (this measures the scoring, not the loader).
Ratio = harness images/s over bare images/s (goal >= 0.95), best over best of N interleaved repeats, and
the median of the N paired ratios (steadier when the machine is shared; the figure judged).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402
from torchvision.models import get_model  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402
from throughput_ratio import compare  # noqa: E402

from harness.evaluation.evaluator import Outputs  # noqa: E402
from harness.evaluation.samples import SemanticTarget  # noqa: E402
from harness.evaluation.semantic import SemanticEvaluator  # noqa: E402
from harness.evaluation.state import merge_all  # noqa: E402
from harness.pipeline import run_overlapped  # noqa: E402


def configure(parser) -> None:
    parser.add_argument("--model", default="lraspp_mobilenet_v3_large",
                        help="a torchvision segmentation model name, e.g. deeplabv3_resnet50, fcn_resnet50")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)


def measure(args) -> list[Figure]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = get_model(args.model, weights=None, weights_backbone=None, num_classes=19).eval()
    batches = []
    for start in range(0, args.n, args.batch_size):
        size = min(args.batch_size, args.n - start)
        labels = torch.randint(0, 19, (size, 512, 1024))
        labels[:, -40:] = 255
        batches.append((torch.rand(size, 3, 256, 512), SimpleNamespace(
            ids=[str(start + i) for i in range(size)], targets=[SemanticTarget(label) for label in labels])))

    def bare() -> float:
        begin = time.perf_counter()
        with torch.inference_mode():
            for images, _ in batches:
                model(images)["out"]
        return time.perf_counter() - begin

    def harness() -> float:  # the evaluation loop's pipeline: the evaluator digests on its thread
        evaluator = SemanticEvaluator(19)
        begin = time.perf_counter()
        states = []

        def forward(item):
            with torch.inference_mode():
                return model(item[0])["out"]

        def digest(item, logits):
            with torch.inference_mode():
                states.append(evaluator.process(item[1], Outputs("clean", {"semantic_logits": logits})))

        run_overlapped(batches, forward, digest)
        evaluator.compute(merge_all(states))
        return time.perf_counter() - begin

    print(f"{args.model}: {args.n} images 256x512 -> labels 512x1024, batch {args.batch_size}, best of {args.repeats}")
    return [compare(bare, harness, args.repeats, args.n, "model + evaluator",
                    f"harness / bare img/s, {args.model} ({args.n} img 256x512)")]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"n": 2, "batch_size": 2, "repeats": 1})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
