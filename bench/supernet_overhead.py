"""Supernet overhead (SPEC section 9): train-step time of the supernet set to an arch divided by
that of the arch's extracted model, for the largest, median and smallest arch.

A train step is zero_grad + forward + cross-entropy (+ CaP BCE) + backward on CPU with a fixed
thread count. The two models are timed interleaved (A, B, A, B, ...) after warm-up, because the
machine is shared and noisy, and the medians are compared. Also prints params/FLOPs of the
three archs at 320x320 with 6 classes (fvcore and thop, on the extracted models).

    python bench/supernet_overhead.py            # batch 8, 256x256, 1 warm-up + 5 repeats, 1 thread
    python bench/supernet_overhead.py --quick    # smoke run: batch 2, 128x128, 3 repeats
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from autonad.space import Arch, HeadsArch, SearchSpace
from autonad.supernet import Supernet, SupernetConfig, complexity

RESULTS = Path(__file__).resolve().parent / "results" / "supernet_overhead.json"


def median_arch(space: SearchSpace, heads: HeadsArch) -> Arch:
    """Every gene at its middle choice: a deterministic mid-size arch."""
    return space.decode([len(g.choices) // 2 for g in space.genes], heads)


def train_step(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, defect: torch.Tensor) -> float:
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = F.cross_entropy(out["seg"], target)
    if "cap" in out:
        loss = loss + F.binary_cross_entropy_with_logits(out["cap"], defect)
    loss.backward()
    return time.perf_counter() - start


def measure(supernet: Supernet, arch: Arch, args: argparse.Namespace) -> dict:
    supernet.set_arch(arch)
    extracted = supernet.extract(arch).train()
    supernet.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    target = torch.randint(0, args.classes, (args.batch, args.size, args.size), generator=gen)
    defect = (torch.rand(args.batch, generator=gen) > 0.5).float()
    times: dict[str, list[float]] = {"supernet": [], "extracted": []}
    models = {"supernet": supernet, "extracted": extracted}
    for _ in range(args.warmup):
        for model in models.values():
            train_step(model, x, target, defect)
    for _ in range(args.repeats):
        for name, model in models.items():  # interleaved: A, B, A, B, ...
            times[name].append(train_step(model, x, target, defect))
    sup, ext = statistics.median(times["supernet"]), statistics.median(times["extracted"])
    return {"supernet_s": sup, "extracted_s": ext, "ratio": sup / ext, "times": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supernet", default="autonad", help="supernet name or YAML path")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 128x128, 3 repeats")
    parser.add_argument("--threads", type=int, default=1, help="fixed torch thread count (1: robust on a shared box)")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.batch, args.size, args.warmup, args.repeats = (2, 128, 1, 3) if args.quick else (8, 256, 1, 5)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)

    config = SupernetConfig.load(args.supernet)
    supernet = Supernet(config, args.classes)
    heads = HeadsArch(cap=config.heads.cap)
    space = supernet.space
    archs = {
        "largest": space.largest(heads=heads),
        "median": median_arch(space, heads),
        "smallest": space.smallest(heads=heads),
    }

    print(
        f"supernet '{config.name}' ({config.weight_sharing}), {args.threads} thread(s), batch {args.batch}, "
        f"{args.size}x{args.size}, {args.warmup} warm-up + {args.repeats} interleaved repeats"
    )
    row = "{:<9} {:>9} {:>14} {:>12} {:>11} {:>12} {:>6}"
    print(row.format("arch", "params M", "GFLOPs fvcore", "GFLOPs thop", "supernet s", "extracted s", "ratio"))
    results = {}
    for name, arch in archs.items():
        size = complexity(supernet.extract(arch), (320, 320))
        timing = measure(supernet, arch, args)
        results[name] = {
            "arch": arch.to_dict(),
            "arch_short": arch.short(),
            "params": size.params,
            "flops_fvcore_320": size.flops_fvcore,
            "flops_thop_320": size.flops_thop,
            **timing,
        }
        numbers = (size.params / 1e6, size.flops_fvcore / 1e9, size.flops_thop / 1e9)
        seconds = (timing["supernet_s"], timing["extracted_s"], timing["ratio"])
        print(row.format(name, *(f"{v:.2f}" for v in numbers), *(f"{v:.3f}" for v in seconds)))
    report = {
        "benchmark": "supernet_overhead",
        "supernet": config.name,
        "weight_sharing": config.weight_sharing,
        "quick": args.quick,
        "batch": args.batch,
        "input_size": [args.size, args.size],
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "classes": args.classes,
        "complexity_input_size": [320, 320],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "max_ratio": max(r["ratio"] for r in results.values()),
        "archs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"max ratio {report['max_ratio']:.3f} (target <= 1.10); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
