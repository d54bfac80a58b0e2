"""Latency model accuracy (SPEC section 9): predicted vs end-to-end measured latency of random
subnets, on this machine, against a measured table.

Prints and writes as JSON: share of subnets whose prediction is within +-10% of the measurement,
Kendall tau of the two rankings, MAPE. It then times the same subnets a second time and reports
the same figures for measurement vs re-measurement: the noise ceiling of this machine, which no
predictor can beat (a prediction cannot agree with a measurement better than the measurement
agrees with itself).

    python bench/latency_predictor.py                       # cpu table, autonad 128x128, 100 subnets
    python bench/latency_predictor.py --hw cpu --search-space tiny --n 50
    python bench/latency_predictor.py --search-space autonad-fine --runtime onnxruntime --name latency_predictor_ort

With `--runtime onnxruntime` the table's ONNX Runtime profile is validated against ONNX Runtime
end-to-end timings, and its entries are set beside the eager profile's of the same table, per
operator type (the median ORT / eager ratio of the components of each type).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from common import report

from autonad.latency.components import op_type_of
from autonad.latency.measure import summary
from autonad.latency.validate import validate
from autonad.pipeline import predictor_for


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hw", default="cpu")
    p.add_argument("--search-space", default="autonad")
    p.add_argument("--input-size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ceiling", action="store_true", help="skip the second timing pass")
    p.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime"))
    p.add_argument("--name", default="latency_predictor", help="results file bench/results/<name>.json")
    args = p.parse_args(argv)
    command = " ".join(["python bench/latency_predictor.py", *(argv if argv is not None else sys.argv[1:])])

    pred = predictor_for(args.hw, args.search_space, tuple(args.input_size), 1, 2, args.runtime)
    start = time.perf_counter()
    first = validate(pred, args.n, args.seed, torch.device("cpu"))
    result = {
        "command": command,
        "runtime": args.runtime,
        "device": pred.device,
        "search_space": args.search_space,
        "input_size": list(args.input_size),
        "profile": pred.profile.signature,
        "hardware": pred.profile.hardware,
        "calibration": {"fitted_on": pred.profile.calibration.fitted_on, "mape": pred.profile.calibration.mape},
        "predicted_vs_measured": first.summary,
    }
    if not args.no_ceiling:
        second = validate(pred, args.n, args.seed, torch.device("cpu"))
        result["remeasured_vs_measured"] = summary(second.measured, first.measured)
        result["predicted_vs_remeasured"] = summary(second.predicted, second.measured)
    result["seconds"] = round(time.perf_counter() - start, 1)
    if args.runtime != "torch":
        eager = predictor_for(args.hw, args.search_space, tuple(args.input_size), 1, 2).profile
        result["vs_torch"] = per_op_ratios(eager.entries, pred.profile.entries)
    report(args.name, result)
    return 0


def per_op_ratios(eager: dict[str, float], other: dict[str, float]) -> dict[str, dict]:
    """Per operator type: components, median and range of other / eager ms, and the summed ms of each."""
    import statistics

    groups: dict[str, list[str]] = {}
    for key in sorted(eager.keys() & other.keys()):
        groups.setdefault(op_type_of(key), []).append(key)
    out = {}
    for kind, keys in sorted(groups.items()):
        ratios = [other[k] / eager[k] for k in keys if eager[k] > 0]
        if not ratios:
            continue
        out[kind] = {"components": len(keys), "median_ratio": round(statistics.median(ratios), 3),
                     "min_ratio": round(min(ratios), 3), "max_ratio": round(max(ratios), 3),
                     "eager_ms_sum": round(sum(eager[k] for k in keys), 3),
                     "other_ms_sum": round(sum(other[k] for k in keys), 3)}  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
