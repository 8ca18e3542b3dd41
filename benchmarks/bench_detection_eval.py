"""Detection evaluation overhead: the harness's detection job (``run_task``: loading, the forward pass, boxes
mapped to original pixels, ``DetectionEvaluator.process`` per batch on the digest thread, then the merge and
COCO scoring) vs a bare ``model(images)`` loop over the same images decoded beforehand, same run.

    python benchmarks/bench_detection_eval.py [--model centernet_resnet_scenes] [--n 300] [--batch-size 50]
        [--repeats 5] [--quick]

Model: an embedded zoo detector (the cheapest detectors the harness runs, so the worst case for the ratio;
up to 100 detections per image) on the embedded scenes test split. The bare loop gets its batches decoded
and preprocessed before timing; the harness loads its own (one batch ahead, on its loading thread). Ratio =
harness images/s over bare images/s (goal >= 0.95): best over best of N interleaved repeats, and the median
of the N paired ratios (the figure judged).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402

from figures import Benchmark, Figure  # noqa: E402
from throughput_ratio import compare  # noqa: E402

from harness.data.loader import make_loader  # noqa: E402
from harness.data.scenes import ScenesSource  # noqa: E402
from harness.loop import run_task  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402
from harness.tasks.detection import DetectionTask  # noqa: E402


def configure(parser) -> None:
    parser.add_argument("--model", default="centernet_resnet_scenes", help="an embedded zoo detector")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="faster_coco_eval", choices=["faster_coco_eval", "pycocotools"])
    parser.add_argument("--device", default="cpu", help="cpu | cuda (tools/gpu_check.sh runs it on cuda, where "
                        "loading and COCO's per-image matching overlap the forward passes)")


def measure(args) -> list[Figure]:
    torch.set_num_threads(1)
    device = torch.device(args.device)
    model = load_model(ModelSpec(name=args.model, source="zoo")).to_device(device)
    source = ScenesSource(split="test", target="detection")
    ctx = JobContext(model, source, device, args.batch_size, seed=0, show_progress=False)
    task = DetectionTask(DetectionTask.Params(backend=args.backend, n=args.n))
    batches = [batch.images.to(device) for batch in make_loader(task.prepare(ctx).source, model.preprocess,
                                                                 args.batch_size, 0)]

    def bare() -> float:  # the detections are read back to the host, as any use of them must
        begin = time.perf_counter()
        with torch.inference_mode():
            for images in batches:
                [(d.boxes.cpu(), d.scores.cpu(), d.labels.cpu()) for d in model.module(images)]
        return time.perf_counter() - begin

    def harness() -> float:
        begin = time.perf_counter()
        run_task(task, ctx)
        return time.perf_counter() - begin

    print(f"{args.model}: {args.n} scenes 128x128, batch {args.batch_size}, {args.backend}, {device}, "
          f"best of {args.repeats}")
    return [compare(bare, harness, args.repeats, args.n, "run_task (load, infer, records, COCO)",
                    f"harness / bare img/s, {args.model} ({args.n} scenes, {args.backend}, {device.type})")]


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"n": 20, "batch_size": 10, "repeats": 1})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
