"""What every benchmark reports, and the command line they share.

A benchmark measures one or more :class:`Figure` s: a measured value with its unit and, where the project
states one, its goal (``at_least`` and/or ``at_most``). Each ``bench_*.py`` builds a :class:`Benchmark` from
its argument setup, its measurement and its quick-mode defaults; that gives it

- ``main()``: the command line (the script's own options, plus ``--quick`` and ``--json FILE``), which prints
  the benchmark's own lines and then its figures, and with ``--json`` writes them for ``run_all.py``;
- ``run(quick=False, argv=())``: the same measurement in this process, returning the figures.

``--quick`` swaps in tiny sizes and one or two repeats (seconds): it shows the benchmark still runs
against today's harness, not how fast the harness is; options given explicitly still win.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

QUICK_VERDICT = "quick (not judged)"


@dataclass
class Figure:
    """One measured figure: ``measured`` in ``unit``, judged against ``at_least`` / ``at_most`` when given."""

    name: str
    measured: float
    unit: str = ""  # "" (a ratio), "x" (times faster), "s", "ms", "MB", "%", ...
    at_least: float | None = None
    at_most: float | None = None
    goal_note: str = ""  # replaces the generated goal text (e.g. where the goal is not a threshold)
    detail: str = ""  # shown after the measured value, e.g. the other statistic of the same pairs
    digits: int | None = 3  # decimals of the measured value; None: shortest form (%g)

    @property
    def judged(self) -> bool:
        return self.at_least is not None or self.at_most is not None

    def goal(self) -> str:
        if self.goal_note:
            return self.goal_note
        if self.at_least is not None and self.at_most is not None:
            return f"{self._number(self.at_least)} .. {self._number(self.at_most)}"
        if self.at_least is not None:
            return f">= {self._number(self.at_least)}"
        if self.at_most is not None:
            return f"<= {self._number(self.at_most)}"
        return "no goal (informational)"

    def measured_text(self) -> str:
        text = self._number(self.measured, self.digits)
        return f"{text} ({self.detail})" if self.detail else text

    def verdict(self, quick: bool = False) -> str:
        if quick:
            return QUICK_VERDICT
        if not self.judged:
            return "informational"
        if not math.isfinite(self.measured):
            return "misses"
        low_ok = self.at_least is None or self.measured >= self.at_least
        high_ok = self.at_most is None or self.measured <= self.at_most
        return "meets" if low_ok and high_ok else "misses"

    def _number(self, value: float, digits: int | None = None) -> str:
        if digits is None:
            text = f"{value:g}"
        elif not math.isfinite(value):
            text = str(value)
        else:
            text = f"{value:.{digits}f}"
        unit = self.unit
        if unit == "x":
            return f"{text}x"
        return f"{text} {unit}" if unit else text

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "goal": self.goal(), "measured_text": self.measured_text()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Figure":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio_figure(name: str, paired: Sequence[float], best: float, at_least: float | None = None,
                 at_most: float | None = None) -> Figure:
    """The figure of an interleaved harness/bare comparison: judged on the median of the paired ratios
    (steadier on a shared machine), with the best-over-best ratio alongside."""
    return Figure(name, median(paired), at_least=at_least, at_most=at_most,
                  detail=f"median of {pairs(len(paired))}; best/best {best:.3f}")


def pairs(n: int) -> str:
    return f"{n} pair" + "s" * (n != 1)


def print_figures(figures: Sequence[Figure], quick: bool = False, out=None) -> None:
    out = out or sys.stdout
    rows = [(f.name, f.goal(), f.measured_text(), f.verdict(quick)) for f in figures]
    if not rows:
        print("figures: none", file=out)
        return
    widths = [max(len(r[i]) for r in rows + [("figure", "goal", "measured", "verdict")]) for i in range(4)]
    print("figures" + (" (quick mode: sizes too small to judge)" if quick else "") + ":", file=out)
    for row in [("figure", "goal", "measured", "verdict"), *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


@dataclass
class Benchmark:
    """A benchmark's command line: ``configure`` adds its options, ``measure`` runs it, ``quick`` holds the
    option values of the quick mode."""

    doc: str
    configure: Callable[[argparse.ArgumentParser], None]
    measure: Callable[[argparse.Namespace], list[Figure]]
    quick: dict[str, Any] = field(default_factory=dict)

    def parser(self, quick: bool) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(description=self.doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.configure(parser)
        parser.add_argument("--quick", action="store_true",
                            help="tiny sizes, 1-2 repeats (seconds): checks that it runs, not how fast; "
                                 + ", ".join(f"--{k.replace('_', '-')} {_shown(v)}" for k, v in self.quick.items()))
        parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here as JSON")
        if quick:
            parser.set_defaults(**self.quick)
        return parser

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        argv = list(argv)
        return self.parser("--quick" in argv).parse_args(argv)

    def run(self, quick: bool = False, argv: Sequence[str] = ()) -> list[Figure]:
        """Measure in this process; returns the figures."""
        return self.measure(self.parse([*argv, *(["--quick"] if quick else [])]))

    def main(self, argv: Sequence[str] | None = None) -> int:
        args = self.parse(sys.argv[1:] if argv is None else argv)
        figures = self.measure(args)
        print_figures(figures, args.quick)
        if args.json:
            args.json.write_text(json.dumps({"quick": args.quick, "figures": [f.to_json() for f in figures]},
                                            indent=1))
        return 0


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
