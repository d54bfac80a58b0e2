"""The calibrated latency estimate against measurements (device issue; SPEC section 9).

published  For each device of paper 003 Table VIII (RTX 3090, Jetson Xavier NX), one achieved
           fraction of the roofline and a per-kernel cost are fitted on the table's rows for the
           networks we rebuild (DeepLabv3+ ResNet-101, SegFormer MiT-B4); the estimate then
           predicts five random archs of the `autonad` space with 5.5-6.5 M parameters at 320x320,
           set beside AutoNAD's own held-out row (5.9 M parameters: 8.5 ms / 85.1 ms). The table
           states no input size: 320x320 is assumed (the paper's training size).
cpu        On this CPU, a fraction per kernel class and the per-kernel cost are fitted on the
           end-to-end timings of `--fit` random subnets and predict `--n` others (Kendall tau,
           share within +-10%); the pure roofline's ranking is set beside it.

    python bench/latency_estimate.py                   # both parts (~6 min on 2 cores)
    python bench/latency_estimate.py --skip-cpu        # the published part only (seconds)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import asdict

import torch
from common import load_result, report

from autonad.errors import AutoNADError
from autonad.latency.components import profiling_supernet
from autonad.latency.measure import TimingConfig, random_archs, summary, time_subnets
from autonad.latency.references import PUBLISHED_NETWORKS, TABLE8, TABLE8_AUTONAD, TABLE8_INPUT, calibrate_on_published
from autonad.latency.roofline import fit_estimate, kernel_counts
from autonad.latency.table import RooflineSpec, load_tables
from autonad.pipeline import predictor_for
from autonad.space.searchspace import SearchSpace

PAPER_PARAMS_M = (5.5, 6.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", type=int, default=5, help="paper-sized archs per device")
    p.add_argument("--search-space", default="autonad")
    p.add_argument("--input-size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"), help="cpu part")
    p.add_argument("--fit", type=int, default=40)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--peak-gflops", type=float, default=96.0, help="this CPU, one thread (Zen 4: 32 FLOP/cycle, ~3 GHz)"
    )
    p.add_argument("--bandwidth-gbs", type=float, default=20.0, help="this CPU, one thread")
    p.add_argument("--skip-cpu", action="store_true")
    p.add_argument("--resume", action="store_true", help="reuse the cpu timings already in the JSON")
    p.add_argument("--name", default="latency_estimate")
    args = p.parse_args(argv)
    result = {"command": " ".join(["python bench/latency_estimate.py", *(argv if argv is not None else sys.argv[1:])])}
    space = SearchSpace.load(args.search_space)
    result["published"] = {hw: published(space, hw, args.archs, args.seed) for hw in ("rtx3090", "jetson-xavier-nx")}
    result["published_input"] = list(TABLE8_INPUT)
    report(args.name, result)
    if not args.skip_cpu:
        old = load_result(args.name).get("cpu") if args.resume else None
        result["cpu"] = cpu(space, args, old)
        report(args.name, result)
    return 0


def paper_sized(space: SearchSpace, k: int, seed: int) -> list[tuple]:
    """`k` random archs whose extracted network has 5.5-6.5 M parameters, with that network."""
    net, rng, out = profiling_supernet(space, 2), random.Random(seed), []
    while len(out) < k:
        arch = space.sample(rng)
        model = net.extract(arch)
        params = sum(t.numel() for t in model.parameters()) / 1e6
        if PAPER_PARAMS_M[0] <= params <= PAPER_PARAMS_M[1]:
            out.append((arch, model, params))
    return out


def published(space: SearchSpace, hw: str, k: int, seed: int) -> dict:
    tables = load_tables(hw)
    base = RooflineSpec(tables.roofline.peak_gflops, tables.roofline.bandwidth_gbs)  # uncalibrated: launch 5 us
    fitted = calibrate_on_published(base, hw)
    image = torch.zeros(1, 3, *TABLE8_INPUT)
    refs = []
    for net in PUBLISHED_NETWORKS:
        counts = kernel_counts(net.build(2), [image], base)
        refs.append({"name": net.name, "published_ms": net.latency_ms[hw], "roofline_ms": counts.ms(base),
                     "estimate_ms": counts.ms(fitted), "kernels": sum(counts.kernels.values())})  # fmt: skip
    shipped = _shipped(hw, space)
    archs = []
    for arch, model, params in paper_sized(space, k, seed):
        counts = kernel_counts(model, [image], base)
        row = {"arch": arch.hash, "params_m": round(params, 3), "kernels": sum(counts.kernels.values()),
               "roofline_ms": counts.ms(base), "estimate_ms": counts.ms(fitted)}  # fmt: skip
        if shipped is not None:
            row["shipped_table_ms"] = shipped.predict(arch)
        row["ratio"] = row["estimate_ms"] / TABLE8_AUTONAD[hw]
        archs.append(row)
    return {
        "fitted": asdict(fitted),
        "references": refs,
        "autonad_published_ms": TABLE8_AUTONAD[hw],
        "archs": archs,
        "median_ratio": statistics.median(a["ratio"] for a in archs),
        "median_roofline_ratio": statistics.median(a["roofline_ms"] / TABLE8_AUTONAD[hw] for a in archs),
        "shipped_profile": None if shipped is None else shipped.profile.signature,
        "source": TABLE8,
    }


def _shipped(hw: str, space: SearchSpace):
    """The shipped table's predictor at 320x320, as `search --hw` would use it (None without one)."""
    try:
        return predictor_for(hw, space.name, TABLE8_INPUT, 1, 2)
    except AutoNADError:  # the table lacks the profile: the figure is then left out
        return None


def cpu(space: SearchSpace, args: argparse.Namespace, old: dict | None) -> dict:
    archs = random_archs(space, args.fit + args.n, args.seed + 1)
    image = torch.zeros(1, 3, *args.input_size)
    hashes = [a.hash for a in archs]
    if old and old.get("archs") == hashes:
        measured = old["measured_ms"]
    else:
        timing = TimingConfig(threads=1, repeats=11)
        measured = time_subnets(space, archs, image, 2, torch.device("cpu"), timing, description="timing subnets")
    base = RooflineSpec(args.peak_gflops, args.bandwidth_gbs)
    net = profiling_supernet(space, 2)
    counts = [kernel_counts(net.extract(a), [image], base) for a in archs]
    fit, held = slice(0, args.fit), slice(args.fit, None)
    sources = [f"{args.fit} random {space.name} subnets at {args.input_size[0]}x{args.input_size[1]} timed here"]
    fitted = fit_estimate(counts[fit], measured[fit], base, sources)
    return {
        "search_space": space.name,
        "input_size": list(args.input_size),
        "threads": 1,
        "archs": hashes,
        "measured_ms": measured,
        "fitted": asdict(fitted),
        "fit_set": summary([c.ms(fitted) for c in counts[fit]], measured[fit]),
        "held_out": summary([c.ms(fitted) for c in counts[held]], measured[held]),
        "roofline_held_out": summary([c.ms(base) for c in counts[held]], measured[held]),
    }


if __name__ == "__main__":
    raise SystemExit(main())
