"""The search stage (SPEC section 7): latency-aware evolution search over a trained supernet.

Public API::

    config = SearchConfig(population=100, generations=50, fitness="0.5*miou+0.5*seg_recall",
                          max_latency_ms=10.0, workers=2)
    settings = EvalSettings(checkpoint="runs/supernet/x/checkpoint.pt", dataset="mt",
                            val_images=config.val_images)
    with make_evaluator(settings, config.workers, ray_address) as evaluator:   # Ray pool, or in-process (0)
        search = EvolutionSearch(space, config, evaluator,
                                 gene_weights=prior,            # {gene name: weights}, the latency prior
                                 latency_fn=predict_ms,         # arch -> predicted ms
                                 complexity_fn=SubnetComplexity.from_config(sn_config, n_classes, size),
                                 state_path=run_dir / "search_state.pt")
        result = search.run(resume=False)                       # SearchResult: best, reason, pareto, history, ...
    write_outputs(run_dir, result)                              # pareto.csv, history.jsonl, pareto.png

* By default (``objective="auto"`` without a latency weight or limit) parents are selected by
  NSGA-II rank on (fitness, latency) and `best` is the fastest arch within `tolerance` fitness
  points of the best fitness (`pick_best`), so the target device decides. With a weight, Score =
  fitness - latency_weight * latency_ms, or a `latency_share` of the fitness per 10% latency;
  fitness is a metric or a weighted sum of them (`parse_fitness`).
* Evaluators yield results as they complete (`imap`); `RayEvaluator` re-runs the candidates of an
  actor that died; every arch is evaluated once (cached by `Arch.hash`).
"""

from autonad.search.config import FITNESS_METRICS, SearchConfig, fitness_value, parse_fitness
from autonad.search.evaluate import (
    EvalContext,
    EvalSettings,
    Evaluator,
    FunctionEvaluator,
    LocalEvaluator,
    RayEvaluator,
    SubnetComplexity,
    connect_ray,
    make_evaluator,
)
from autonad.search.evolution import (
    STATE_FORMAT,
    Candidate,
    EvolutionSearch,
    SearchResult,
    crossover,
    is_op_gene,
    mutate,
    pareto_front,
    pick_best,
)
from autonad.search.outputs import plot_pareto, write_history, write_outputs, write_pareto_csv

__all__ = [
    "FITNESS_METRICS", "STATE_FORMAT", "Candidate", "EvalContext", "EvalSettings", "EvolutionSearch", "Evaluator",
    "FunctionEvaluator", "LocalEvaluator", "RayEvaluator", "SearchConfig", "SearchResult", "SubnetComplexity",
    "connect_ray", "crossover", "fitness_value", "is_op_gene", "make_evaluator", "mutate", "pareto_front", "pick_best",
    "parse_fitness", "plot_pareto", "write_history", "write_outputs", "write_pareto_csv",
]  # fmt: skip
