"""`autonad search`: supernet (trained once, reused) -> latency prior -> evolution -> exported best model."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.table import Table

from autonad.cli.common import (
    add_budget_args,
    add_device_option,
    add_tensorboard_option,
    apply_budget_args,
    duration_minutes,
    pct,
    positive_int,
    recipe_label,
)
from autonad.cli.latency import add_runtime_option
from autonad.cli.train import add_data_options
from autonad.errors import AutoNADError
from autonad.latency.prior import PRIOR_SOURCES
from autonad.pipeline import SearchRequest, run_search
from autonad.train.recipe import Recipe, default_recipe
from autonad.ui import console, fit_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find the best subnet for a dataset and a device (trains the supernet once)")
    add_data_options(p)
    p.add_argument("--hw", required=True, help="target device: table name, alias (jetson, 3090, cpu) or path")
    add_runtime_option(p)
    p.add_argument("--recipe", help="recipe name or path (default: <dataset>-cpu without a GPU, demo for synthetic)")
    p.add_argument("--supernet", help="supernet definition (default: the recipe's)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/search/<dataset>__<hw>__<recipe>)")
    p.add_argument("--resume", action="store_true", help="continue a stopped search in --out")
    evo = p.add_argument_group("evolution (paper Algorithm 1)")
    evo.add_argument("--population", type=positive_int, help="default: the recipe's search budget (paper: 100)")
    evo.add_argument("--generations", type=positive_int, help="default: the recipe's (paper: 50)")
    evo.add_argument("--parents", type=positive_int, help="top-k parents, they survive (default: recipe's; paper 10)")
    evo.add_argument("--p-mutation", type=float, default=0.2)
    evo.add_argument("--p-crossover", type=float, default=0.4)
    evo.add_argument("--seed", type=int, default=0)
    add_objective_args(p)
    run = p.add_argument_group("evaluation")
    run.add_argument("--val-images", type=positive_int, help="validation images per candidate (default: recipe's)")
    run.add_argument("--workers", type=int, help="Ray evaluation workers (default: CPU cores; 0: in-process)")
    run.add_argument("--ray-address", help="join an existing Ray cluster (e.g. 10.0.0.5:6379)")
    run.add_argument("--threads", type=positive_int, help="torch threads of this process (supernet training)")
    add_device_option(run)
    add_budget_args(p, "the supernet's training")
    add_tensorboard_option(p)
    ft = p.add_argument_group("fine-tuning of the best arch before export (default: the recipe's search section)")
    ft = ft.add_mutually_exclusive_group()
    ft.add_argument("--finetune", type=duration_minutes, metavar="TIME",
                    help="fine-tune the best arch from its inherited weights for this long (10m, 1h)")  # fmt: skip
    ft.add_argument("--finetune-steps", type=positive_int, metavar="N", help="... for this many optimiser steps")
    ft.add_argument("--no-finetune", action="store_true", help="export the inherited weights as they are (paper)")
    p.set_defaults(func=search)


def add_objective_args(p: argparse.ArgumentParser) -> None:
    obj = p.add_argument_group("objective and constraints")
    obj.add_argument(
        "--fitness", default="miou", help="miou | mf1 | sample_miou | seg_recall | e.g. 0.5*miou+0.5*seg_recall"
    )
    obj.add_argument("--latency-weight", type=latency_weight, default=(0.0, 0.0), metavar="W",
                     help="score = fitness - W * ms (the paper's lambda, per ms), or W as a percentage (2%%): the "
                          "share of the fitness an arch 10%% slower loses, the same on every device")  # fmt: skip
    obj.add_argument("--objective", choices=("auto", "score", "nsga2"), default="auto",
                     help="nsga2: Pareto front of (fitness, latency), best = the fastest within --tolerance of the "
                          "best fitness; score: highest score; auto (default): nsga2 unless --latency-weight or "
                          "--max-latency-ms is given")  # fmt: skip
    obj.add_argument(
        "--tolerance",
        type=float,
        metavar="POINTS",
        help="nsga2: fitness points (mIoU x 100) the fastest pick may give up (default: 1.0)",
    )
    obj.add_argument("--refine", type=int, metavar="N",
                     help="nsga2: generations after the evolution that try cheaper one-gene neighbours (on the "
                          "target's table) of the archs within --tolerance (default 1; 0: off)")  # fmt: skip
    obj.add_argument("--max-latency-ms", type=float)
    obj.add_argument("--max-params", type=float, help="e.g. 6e6")
    obj.add_argument("--max-flops", type=float, help="e.g. 2e10")
    obj.add_argument("--prior-temperature", type=float, default=1.0, help="latency prior softmax temperature")
    obj.add_argument("--prior", choices=PRIOR_SOURCES, default="auto",
                     help="the latency prior's op costs: the target's table, or fitted to the supernet's training "
                          "latency records (paper IV-D); auto (default): the records when the target's table is "
                          "only an estimate and they were timed on the target device, enough of them; else the "
                          "table")  # fmt: skip


def search(args: argparse.Namespace) -> int:
    from autonad.report import report_search_run

    if args.threads:
        torch.set_num_threads(args.threads)
    base = Recipe.load(args.recipe or default_recipe(args.dataset))
    recipe = apply_budget_args(base, args, "train")
    label = recipe_label(args.recipe, base, recipe)
    recipe = recipe.with_finetune(args.finetune_steps, args.finetune, args.no_finetune)  # not the supernet's folder
    config = search_config(args, recipe)
    if args.tolerance is not None and config.selection == "score":
        raise AutoNADError("--tolerance picks from the Pareto front (nsga2); with a latency weight (or --objective "
                           "score) the highest score wins: drop --tolerance or the weight")  # fmt: skip
    request = SearchRequest(dataset=args.dataset, hw=args.hw, recipe=recipe, recipe_label=label,
                            supernet=args.supernet or recipe.supernet, config=config, data_root=args.data_root,
                            skip_bad=args.skip_bad, out=args.out, resume=args.resume, runtime=args.runtime,
                            prior_temperature=args.prior_temperature, prior=args.prior, ray_address=args.ray_address,
                            device=args.device, tensorboard=args.tensorboard)  # fmt: skip
    outcome = run_search(request)
    print_summary(outcome.result, outcome.latency_label, outcome.out)
    console.print(f"report: {report_search_run(outcome.out, outcome.files['torchscript'], outcome.source)}")
    return 0


def search_config(args: argparse.Namespace, recipe: Recipe):
    """The evolution's settings: the flags given, else the recipe's search budget."""
    from autonad.search import SearchConfig

    budget = recipe.search
    return SearchConfig(
        population=args.population or budget.population, generations=args.generations or budget.generations,
        parents=args.parents or budget.parents, p_mutation=args.p_mutation, p_crossover=args.p_crossover,
        latency_weight=args.latency_weight[0], latency_share=args.latency_weight[1], fitness=args.fitness,
        objective=args.objective, **({} if args.tolerance is None else {"tolerance": args.tolerance}),
        **({} if args.refine is None else {"refine": args.refine}),
        max_latency_ms=args.max_latency_ms, max_params=args.max_params, max_flops=args.max_flops,
        val_images=args.val_images or budget.val_images, workers=args.workers, seed=args.seed,
    )  # fmt: skip


def latency_weight(text: str) -> tuple[float, float]:
    """`--latency-weight`: '0.01' -> (0.01 per ms, 0) or '2%' -> (0, 0.02 of the fitness per 10% latency)."""
    share = text.strip().endswith("%")
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a weight per ms (0.01) or a percentage (2%), got '{text}'"
        ) from None
    if not (value >= 0 and (value < 100 if share else value < float("inf"))):
        raise argparse.ArgumentTypeError(f"expected 0 or more (a percentage below 100), got '{text}'")
    return (0.0, value / 100) if share else (value, 0.0)


def print_summary(result, latency_label: str, out: Path) -> None:
    best = result.best
    table = Table("", "score", "fitness", "mIoU", "S_mIoU", "Seg_Rec", "ms", "params", "GFLOPs",
                  title=f"search result ({len(result.history)} subnets evaluated, "
                        f"{len(result.pareto)} on the Pareto front; its fittest shown)")  # fmt: skip
    front = sorted(result.pareto, key=lambda c: -c.fitness)[:6]  # the fittest end of the front, where best is
    front = sorted(front, key=lambda c: c.latency_ms or 0.0)
    for label, cand in [("best", best), *((f"front {i + 1}", c) for i, c in enumerate(front))]:
        m = cand.metrics
        table.add_row(label, f"{cand.score:.4f}", f"{cand.fitness:.4f}", pct(m.get("miou")),
                      pct(m.get("sample_miou")), pct(m.get("seg_recall")), _num(cand.latency_ms, 2),
                      _num(cand.params, 2, 1e6, "M"), _num(cand.flops, 2, 1e9))  # fmt: skip
    console.print(fit_table(table, ("GFLOPs", "params", "S_mIoU", "score", "Seg_Rec")))
    console.print(f"best ({best.hash[:8]}): {result.reason}")
    console.print(f"latency: {latency_label}; S_mIoU = Sample_mIoU, Seg_Rec = Seg_Recall (paper 000)")
    console.print(f"run folder: {out} (best_arch.yaml, model.ts, model.onnx, model.json, pareto.csv, pareto.png, "
                  "history.jsonl, latency_prior.png, summary.yaml, tensorboard/, evaluation/)")  # fmt: skip


def _num(value, digits: int, scale: float = 1.0, unit: str = "") -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}{unit}"
