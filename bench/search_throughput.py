"""Search throughput (SPEC section 9): candidates evaluated per minute with 1 and with N Ray workers,
and the speed-up, on the demo supernet (the README's main job trains it).

The same fixed list of random subnets is evaluated by a pool of 1 actor and a pool of N actors
(one torch thread each) in one Ray session; actor start-up (loading the checkpoint) is excluded,
each pool evaluates two warm-up candidates first.

    python bench/search_throughput.py                         # 24 candidates, 1 vs 2 workers
    python bench/search_throughput.py --checkpoint runs/supernet/x/checkpoint.pt --dataset mt --n 40
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path

from common import DEMO_CHECKPOINT, report, require_checkpoint


def main(argv: list[str] | None = None) -> int:
    import ray

    from autonad.search import EvalSettings, RayEvaluator
    from autonad.space import SearchSpace

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-root")
    p.add_argument("--space", default="tiny")
    p.add_argument("--n", type=int, default=24, help="candidates per pool")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--val-images", type=int, default=60)
    args = p.parse_args(argv)
    require_checkpoint(args.checkpoint)

    space = SearchSpace.load(args.space)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(args.n + 2)]
    settings = EvalSettings(checkpoint=str(args.checkpoint), dataset=args.dataset, data_root=args.data_root,
                            val_images=args.val_images, complexity=False)  # fmt: skip
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    result = {"candidates": args.n, "val_images": args.val_images}
    try:
        for workers in (1, args.workers):
            with RayEvaluator(settings, workers=workers) as pool:
                pool.evaluate(archs[:2])  # warm-up: first forward passes, allocator
                start = time.perf_counter()
                pool.evaluate(archs[2:])
                seconds = time.perf_counter() - start
            result[f"workers_{workers}"] = {"seconds": round(seconds, 2), "per_minute": round(60 * args.n / seconds, 1)}
    finally:
        ray.shutdown()
    one, many = result["workers_1"]["per_minute"], result[f"workers_{args.workers}"]["per_minute"]
    result["speedup"] = round(many / one, 3)
    report("search_throughput", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
