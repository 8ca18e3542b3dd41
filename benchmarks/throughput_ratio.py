"""The harness-over-bare throughput ratio the evaluation benchmarks print: both loops timed in turn, N times."""
from __future__ import annotations

from typing import Callable

from figures import Figure, ratio_figure


def compare(bare: Callable[[], float], harness: Callable[[], float], repeats: int, images: int,
            harness_label: str, name: str = "harness / bare images/s", at_least: float = 0.95) -> Figure:
    """Run ``bare`` and ``harness`` (each returns its seconds) alternately ``repeats`` times and print images/s of
    each (best run) and the ratio harness / bare: best over best, and the median of the paired ratios (steadier
    on a shared machine). Goal ``>= at_least`` (0.95). Returns the figure (judged on the median of paired)."""
    bare_times, harness_times = [], []
    for _ in range(repeats):
        bare_times.append(bare())
        harness_times.append(harness())
    best_bare, best_harness = min(bare_times), min(harness_times)
    paired = sorted(b / h for b, h in zip(bare_times, harness_times))
    figure = ratio_figure(name, paired, best_bare / best_harness, at_least=at_least)
    print(f"{'bare model(images):':26s}{images / best_bare:.2f} images/s")
    print(f"{harness_label + ':':26s}{images / best_harness:.2f} images/s")
    print(f"{'ratio harness / bare:':26s}{best_bare / best_harness:.3f} best/best, "
          f"{figure.measured:.3f} median of paired (goal >= {at_least:g})")
    return figure
