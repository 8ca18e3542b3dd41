"""Detection evaluation overhead: the harness's detection pass (``DetectionTask.infer`` — the forward pass and
the mapping of boxes to original pixels — plus ``DetectionEvaluator.process`` per batch, then the merge and
COCO scoring) vs a bare ``model(images)`` loop on the same batches, same run.

    python benchmarks/bench_detection_eval.py [--model centernet_resnet_scenes] [--n 300] [--batch-size 50] [--repeats 5]

Model: an embedded zoo detector (the cheapest detectors the harness runs, so the worst case for the ratio;
up to 100 detections per image) on the embedded scenes test split. Batches are decoded and preprocessed
before timing (this measures the scoring, not the loader). Ratio = harness images/s over bare images/s
(goal >= 0.95): best over best of N interleaved repeats, and the median of the N paired ratios.
"""
from __future__ import annotations

import argparse
import time

import torch

from throughput_ratio import compare

from harness.data.loader import make_loader
from harness.data.scenes import ScenesSource
from harness.evaluation.state import merge_all
from harness.models.loaders import load_model
from harness.specs import ModelSpec
from harness.tasks.base import JobContext, Pass
from harness.tasks.detection import DetectionTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="centernet_resnet_scenes", help="an embedded zoo detector")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="faster_coco_eval", choices=["faster_coco_eval", "pycocotools"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(ModelSpec(name=args.model, source="zoo"))
    source = ScenesSource(split="test", target="detection")
    ctx = JobContext(model, source, torch.device("cpu"), args.batch_size, seed=0, show_progress=False)
    task = DetectionTask(DetectionTask.Params(backend=args.backend, n=args.n))
    ctx = task.prepare(ctx)
    batches = list(make_loader(ctx.source, model.preprocess, args.batch_size, 0))
    meta = task.job_meta(ctx)

    def bare() -> float:
        begin = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                model.module(batch.images)
        return time.perf_counter() - begin

    def harness() -> float:
        evaluator = task.evaluator(meta)
        begin = time.perf_counter()
        with torch.inference_mode():
            states = [evaluator.process("main", batch, task.infer(ctx, Pass("main"), b, batch))
                      for b, batch in enumerate(batches)]
        evaluator.compute(merge_all(states))
        return time.perf_counter() - begin

    print(f"{args.model}: {len(ctx.source)} scenes 128x128, batch {args.batch_size}, {args.backend}, best of {args.repeats}")
    compare(bare, harness, args.repeats, len(ctx.source), "infer + evaluator + COCO")

if __name__ == "__main__":
    main()
