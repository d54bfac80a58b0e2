"""Evolution vs random search at an equal number of evaluations (SPEC section 9 / issue 6).

On the demo supernet (synthetic data, tiny space; the README's main job trains it) and the
measured `cpu` latency table: for each seed, the evolution (latency prior, elitism) runs with a
small budget; random search then evaluates as many distinct uniformly drawn subnets as the
evolution evaluated. Both use the same score (fitness - lambda * predicted ms) and the same
evaluator; the best score of each is reported per seed and averaged.

    python bench/search_vs_random.py                      # 3 seeds, population 16 x 5 generations
    python bench/search_vs_random.py --seeds 5 --latency-weight 0.01
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from common import DEMO_CHECKPOINT, report, require_checkpoint


def main(argv: list[str] | None = None) -> int:
    from autonad.latency.prior import LatencyPrior
    from autonad.pipeline import predictor_for
    from autonad.search import EvalSettings, EvolutionSearch, SearchConfig, fitness_value, make_evaluator

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    p.add_argument("--hw", default="cpu")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--generations", type=int, default=5)
    p.add_argument("--parents", type=int, default=4)
    p.add_argument("--fitness", default="miou")
    p.add_argument("--latency-weight", type=float, default=0.005)
    p.add_argument("--val-images", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    require_checkpoint(args.checkpoint)

    settings = EvalSettings(checkpoint=str(args.checkpoint), dataset="synthetic", val_images=args.val_images,
                            complexity=False)  # fmt: skip
    start, runs = time.perf_counter(), []
    with make_evaluator(settings, args.workers) as evaluator:
        from autonad.search.evaluate import EvalContext

        classes = len(EvalContext(settings).classes)
        predictor = predictor_for(args.hw, "tiny", (128, 128), 1, classes)
        prior = LatencyPrior.from_profile(predictor.profile, predictor.space)
        for seed in range(args.seeds):
            config = SearchConfig(population=args.population, generations=args.generations, parents=args.parents,
                                  fitness=args.fitness, latency_weight=args.latency_weight, objective="score",
                                  seed=seed)  # fmt: skip
            search = EvolutionSearch(predictor.space, config, evaluator, gene_weights=prior.gene_weights,
                                     latency_fn=predictor.predict, show_progress=False)  # fmt: skip
            evolved = search.run()
            n = len(evolved.history)
            rng, archs, seen = random.Random(10_000 + seed), [], set()
            while len(archs) < n:
                arch = predictor.space.sample(rng)
                if arch.hash not in seen:
                    seen.add(arch.hash)
                    archs.append(arch)
            weights = config.fitness_weights
            scores = [fitness_value(weights, m) - args.latency_weight * predictor.predict(a)
                      for a, m in zip(archs, evaluator.evaluate(archs))]  # fmt: skip
            runs.append({"seed": seed, "evaluations": n, "evolution_best": round(evolved.best.score, 5),
                         "random_best": round(max(scores), 5), "evolution_best_arch": evolved.best.arch.short(),
                         "evolution_best_ms": round(evolved.best.latency_ms, 3)})  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)
    result = {
        "score": f"{args.fitness} - {args.latency_weight} * ms ({predictor.label})",
        "runs": runs,
        "evolution_mean": round(statistics.fmean(r["evolution_best"] for r in runs), 5),
        "random_mean": round(statistics.fmean(r["random_best"] for r in runs), 5),
        "evolution_wins": sum(r["evolution_best"] > r["random_best"] for r in runs),
        "seconds": round(time.perf_counter() - start, 1),
    }
    report("search_vs_random", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
