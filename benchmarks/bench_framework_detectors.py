"""Detection eval throughput with framework detectors: the harness vs a bare loop, same data, same run.

    python benchmarks/bench_framework_detectors.py [--images 20] [--repeats 3] [--models detr-small] [--quick]

Models: random-init torchvision Faster R-CNN v2 (min_size 128, 100 region proposals) and a small random-init
HF DETR (its image processor resizing to 128 px), on the embedded scenes test split.
Bare loop: the images already decoded into [0, 1] tensors; per batch only the framework's own call -
``net(list of images)`` for torchvision, ``processor -> model -> post_process_object_detection`` for HF.
Harness: ``run_task(DetectionTask, ctx)`` - loading, the adapter, label mapping, COCO records and COCOeval.
Ratio = harness images/s over bare images/s (goal >= 0.95, each model): the median of the interleaved paired
ratios.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402

from figures import Benchmark, Figure, ratio_figure  # noqa: E402

from harness.data.loader import make_loader  # noqa: E402
from harness.data.scenes import ScenesSource  # noqa: E402
from harness.loop import run_task  # noqa: E402
from harness.models.loaders import load_model  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402
from harness.tasks.base import JobContext  # noqa: E402
from harness.tasks.detection import DetectionTask  # noqa: E402

GOAL = 0.95
RESNET = {"model_type": "resnet", "embedding_size": 32, "hidden_sizes": [32, 64, 128, 256], "depths": [1, 1, 1, 1],
          "out_features": ["stage4"]}
SPECS = [
    ModelSpec(name="fasterrcnn_resnet50_fpn_v2", source="torchvision", num_classes=6,
              kwargs={"min_size": 128, "max_size": 256, "rpn_post_nms_top_n_test": 100}),
    ModelSpec(name="detr-small", source="hf", output="detections", num_classes=5,
              processor={"size": {"shortest_edge": 128, "longest_edge": 256}},
              config={"model_type": "detr", "use_timm_backbone": False, "use_pretrained_backbone": False,
                      "backbone_config": RESNET, "d_model": 128, "encoder_layers": 2, "decoder_layers": 2,
                      "encoder_ffn_dim": 256, "decoder_ffn_dim": 256, "num_queries": 100}),
]


def bare_throughput(adapter, batches: list[list[torch.Tensor]]) -> float:
    """The framework's own calls only (the adapter's ``detect`` is exactly those, before label mapping)."""
    start = time.perf_counter()
    with torch.inference_mode():
        for images in batches:
            if hasattr(adapter, "processor"):
                inputs = adapter.processor(images=images, return_tensors="pt", do_rescale=False)
                adapter.processor.post_process_object_detection(
                    adapter.net(**inputs), threshold=0.0, target_sizes=[tuple(i.shape[-2:]) for i in images])
            else:
                adapter.net(images)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def harness_throughput(ctx: JobContext, task: DetectionTask) -> float:
    start = time.perf_counter()
    metrics = run_task(task, ctx)
    return metrics[0].n / (time.perf_counter() - start)


def configure(parser) -> None:
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=[s.name for s in SPECS], help="which of the models to run")


def measure(args) -> list[Figure]:
    torch.set_num_threads(1)
    source = ScenesSource("test", size=args.images)
    task = DetectionTask(DetectionTask.Params())
    figures = []
    for spec in [s for s in SPECS if s.name in args.models]:
        torch.manual_seed(0)
        model = load_model(spec)
        batches = [list(b.images) for b in make_loader(source, model.preprocess, args.batch_size)]
        ctx = JobContext(model=model, source=source, device=torch.device("cpu"), batch_size=args.batch_size, seed=0,
                         show_progress=False)
        bare_throughput(model.module, batches[:1])  # warm-up
        bare, ours = [], []
        for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
            bare.append(bare_throughput(model.module, batches))
            ours.append(harness_throughput(ctx, task))
        paired = sorted(o / b for o, b in zip(ours, bare))
        figure = ratio_figure(f"harness / bare img/s, {spec.name} ({len(source)} scenes)", paired,
                              max(ours) / max(bare), at_least=GOAL)
        print(f"{spec.name}: bare {max(bare):.1f} img/s, harness {max(ours):.1f} img/s, "
              f"ratio (median of {args.repeats} paired) {figure.measured:.3f}")
        figures.append(figure)
    return figures


BENCHMARK = Benchmark(__doc__, configure, measure, quick={"images": 4, "batch_size": 2, "repeats": 1})
run = BENCHMARK.run

if __name__ == "__main__":
    sys.exit(BENCHMARK.main())
