"""``visionbench effective-robustness``: place published numbers on a testbed's trend without rerunning
anything (harness/robustness/testbeds.py)."""
from __future__ import annotations

import argparse
import json
import sys

from harness.robustness.effective import SCALES
from harness.robustness.testbeds import TIMM_SHIFTS, BadTestbedError, place, trend_of


def effective_robustness_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="visionbench effective-robustness",
        description="Effective robustness (Taori et al., 2020) of an (in-distribution, shifted) accuracy pair: how "
                    "far the shifted accuracy sits above the trend a testbed of models traces. Without --id and "
                    "--shifted, prints the trend only.")
    parser.add_argument("--shift", required=True, help=f"the shift (timm testbed: {', '.join(TIMM_SHIFTS)}; digits testbed: printed, "
                                                            "printed-hard)")
    parser.add_argument("--testbed", default="timm",
                        help="'timm' (timm's published results, shipped), 'digits' (the embedded digits testbed) or a CSV with columns model, shift, "
                             "id_accuracy, shifted_accuracy[, family]")
    parser.add_argument("--id", type=float, dest="id_accuracy", help="in-distribution accuracy, a fraction (0.801)")
    parser.add_argument("--shifted", type=float, dest="shifted_accuracy", help="shifted accuracy, a fraction")
    parser.add_argument("--scale", choices=SCALES, default="logit", help="axes the trend is fit on (default logit)")
    parser.add_argument("--subset", default="all", help="fit on all testbed models (default) or one family: cnn, "
                                                        "transformer, hybrid")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if (args.id_accuracy is None) != (args.shifted_accuracy is None):
        print("error: give both --id and --shifted, or neither (the trend only)", file=sys.stderr)
        return 2
    try:
        if args.id_accuracy is None:
            trend, placement = trend_of(args.testbed, args.shift, args.scale, args.subset), None
        else:
            placement = place(args.id_accuracy, args.shifted_accuracy, args.shift, args.testbed, args.scale,
                              args.subset)
            trend = placement.trend
    except (BadTestbedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"trend": trend.describe()}
    if placement is not None:
        result.update(id_accuracy=placement.id_accuracy, shifted_accuracy=placement.shifted_accuracy,
                      expected_shifted_accuracy=placement.expected,
                      effective_robustness=placement.effective_robustness,
                      relative_robustness=placement.relative_robustness, extrapolated=placement.extrapolated)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    protocol = TIMM_SHIFTS[args.shift].protocol if args.testbed == "timm" else args.shift
    print(f"testbed {trend.testbed}, {protocol}; {trend.scale} axes, {trend.subset} models: {trend.n_models} models, "
          f"slope {trend.slope:.4f}, intercept {trend.intercept:.4f}, R² {trend.r2:.4f}")
    if placement is not None:
        note = " (extrapolated: beyond the testbed's in-distribution range)" if placement.extrapolated else ""
        print(f"in-distribution {placement.id_accuracy:.4f}, shifted {placement.shifted_accuracy:.4f}: the trend "
              f"expects {placement.expected:.4f}; effective robustness {placement.effective_robustness:+.4f}, "
              f"relative robustness {placement.relative_robustness:+.4f}{note}")
    return 0
