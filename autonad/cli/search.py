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
    check_output,
    duration_minutes,
    pct,
    positive_int,
    recipe_label,
)
from autonad.cli.export import export_finetuned, export_trained
from autonad.cli.latency import add_runtime_option, predictor_for
from autonad.cli.train import add_data_options, dataset_slug, name_slug, recipe_stem, supernet_run_dir
from autonad.config import dump_yaml
from autonad.data import absolute_reference, open_dataset
from autonad.errors import AutoNADError
from autonad.latency.prior import LatencyPrior
from autonad.latency.table import canonical_device
from autonad.supernet import SupernetConfig
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
    obj.add_argument("--max-latency-ms", type=float)
    obj.add_argument("--max-params", type=float, help="e.g. 6e6")
    obj.add_argument("--max-flops", type=float, help="e.g. 2e10")
    obj.add_argument("--prior-temperature", type=float, default=1.0, help="latency prior softmax temperature")
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


def search(args: argparse.Namespace) -> int:
    from autonad.report import report_search_run
    from autonad.search import EvalSettings, EvolutionSearch, SearchConfig, make_evaluator, write_outputs
    from autonad.search.evaluate import RayEvaluator, SubnetComplexity
    from autonad.search.evolution import check_resumable, known_identity

    if args.threads:
        torch.set_num_threads(args.threads)
    base = Recipe.load(args.recipe or default_recipe(args.dataset))
    recipe = apply_budget_args(base, args, "train")
    label = recipe_label(args.recipe, base, recipe)
    recipe = recipe.with_finetune(args.finetune_steps, args.finetune, args.no_finetune)  # not the supernet's folder
    supernet_name = args.supernet or recipe.supernet
    sn_config = SupernetConfig.load(supernet_name)
    source = open_dataset(args.dataset, args.data_root, seed=recipe.train.seed, skip_bad=args.skip_bad)
    predictor = predictor_for(args.hw, sn_config.search_space, recipe.input_size, 1, source.num_classes, args.runtime)
    budget = recipe.search
    val_images = args.val_images or budget.val_images
    config = SearchConfig(
        population=args.population or budget.population, generations=args.generations or budget.generations,
        parents=args.parents or budget.parents, p_mutation=args.p_mutation, p_crossover=args.p_crossover,
        latency_weight=args.latency_weight[0], latency_share=args.latency_weight[1], fitness=args.fitness,
        objective=args.objective, **({} if args.tolerance is None else {"tolerance": args.tolerance}),
        max_latency_ms=args.max_latency_ms, max_params=args.max_params, max_flops=args.max_flops,
        val_images=val_images, workers=args.workers, seed=args.seed,
    )  # fmt: skip
    if args.tolerance is not None and config.selection == "score":
        raise AutoNADError("--tolerance picks from the Pareto front (nsga2); with a latency weight (or --objective "
                           "score) the highest score wins: drop --tolerance or the weight")  # fmt: skip
    out = args.out or search_run_dir(args.dataset, canonical_device(args.hw), label, args.runtime)
    check_output(out)
    if (out / "search_state.pt").exists() and not args.resume:
        raise AutoNADError(f"{out}: holds a search already; pass --resume to continue it or --out for a new one")
    console.print(f"target [bold]{predictor.device}[/]: latency from {predictor.label}")
    if (mismatch := predictor.profile.host_mismatch(predictor.device)) is not None:
        console.print(mismatch)

    check_constraints_satisfiable(config, predictor, sn_config, source.num_classes, recipe.input_size)
    prior = LatencyPrior.from_profile(predictor.profile, predictor.space, args.prior_temperature, predictor.label)
    identity = {"hw": predictor.device, "table": predictor.profile.signature, "provenance": predictor.provenance}
    if (out / "search_state.pt").exists():  # a resume on another device or with other settings: refused now
        known = known_identity(config, config.selection, predictor.space, prior.gene_weights, identity)
        check_resumable(out / "search_state.pt", known)
    checkpoint = ensure_supernet(supernet_run_dir(args.dataset, supernet_name, label), recipe, sn_config, source,
                                 args.tensorboard, args.device)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    prior.heatmap(out / "latency_prior.png")

    # absolute paths: Ray actors run in other folders (on a cluster, the same paths must hold on every node)
    dataset, root = absolute_reference(args.dataset, source)
    settings = EvalSettings(checkpoint=str(checkpoint.resolve()), dataset=dataset, data_root=root,
                            val_images=val_images)  # fmt: skip
    complexity = None
    if args.max_params is not None or args.max_flops is not None:
        complexity = SubnetComplexity.from_config(sn_config, source.num_classes, recipe.input_size)
    with make_evaluator(settings, args.workers, args.ray_address, args.device) as evaluator:
        if isinstance(evaluator, RayEvaluator):
            console.print(f"evaluating on {evaluator.plan.describe()}")
        engine = EvolutionSearch(predictor.space, config, evaluator, gene_weights=prior.gene_weights,
                                 latency_fn=predictor.predict, complexity_fn=complexity,
                                 state_path=out / "search_state.pt", identity=identity,
                                 tensorboard_dir=out if args.tensorboard else None)  # fmt: skip
        result = engine.run(resume=args.resume)
    write_outputs(out, result, fitness_label=args.fitness)
    best = result.best
    best.arch.save(out / "best_arch.yaml")
    info = {"dataset": source.name, "hw": predictor.device, "latency_ms": best.latency_ms,
            "latency_provenance": predictor.provenance, "latency_runtime": predictor.runtime,
            "fitness": best.fitness, "fitness_spec": args.fitness, "metrics": best.metrics}  # fmt: skip
    formats = ["torchscript", "onnx"]
    summary = {"best": best.to_dict(), "why": result.reason,
               "search": {**config.to_dict(), "selection": engine.selection}, "hw": identity,
               "supernet": str(checkpoint.resolve())}  # fmt: skip
    if recipe.search.finetunes:
        run_dir = out / f"finetune-{recipe.search.finetune_tag}"
        trained, steps = finetune_best(best.arch, sn_config, recipe, checkpoint, source, run_dir, args.resume,
                                       args.tensorboard, args.device)  # fmt: skip
        info.update(
            inherited_metrics=best.metrics, supernet_checkpoint=str(checkpoint.resolve()), finetune_run=run_dir.name
        )
        files = export_finetuned(run_dir, out, info, formats)
        summary["finetune"] = {"run": run_dir.name, "val": trained.best["val"], "steps": steps}
    else:
        files = export_trained(checkpoint, best.arch, out, info, formats)
    dump_yaml({**summary, "files": {k: str(v) for k, v in files.items()}}, out / "summary.yaml")
    print_summary(result, predictor.label, out)
    console.print(f"report: {report_search_run(out, files['torchscript'], source)}")
    return 0


def finetune_best(arch, sn_config: SupernetConfig, recipe: Recipe, checkpoint: Path, source, run_dir: Path,
                  resume: bool, tensorboard: bool = True, device: str = "auto"):  # fmt: skip
    """Fine-tune the searched arch from its inherited supernet weights (the recipe's `retrain` settings,
    the search's fine-tuning budget) on the supernet's training split; its best validation epoch wins.
    Returns the trained subnet and the steps it trained."""
    from autonad.train.distributed import init_distributed
    from autonad.train.subnet import RetrainJob, load_trained_subnet

    job = RetrainJob.for_arch(arch, sn_config, recipe.finetune_recipe(), checkpoint)
    split = checkpoint.parent / "split.json"
    if split.is_file():  # the split the supernet trained and the search validated on
        source.use_split(split)
    budget = job.recipe.retrain
    told = f"{budget.minutes:g} min" if budget.minutes is not None else f"{budget.steps} steps"
    console.print(f"fine-tuning the best arch {job.arch.hash[:8]} from its supernet weights for {told} -> {run_dir}")
    trainer = job.trainer(source, run_dir, init_distributed(device))
    trainer.tensorboard = tensorboard
    state = trainer.fit(resume=resume and (run_dir / "checkpoint.pt").exists())
    trained = load_trained_subnet(run_dir / "best.pt")
    val = trained.best["val"]
    console.print(f"fine-tuned {state.global_step} steps: best validation epoch {trained.best['epoch']}, "
                  f"mIoU {pct(val.get('miou'))} (inherited weights: see the table below)")  # fmt: skip
    return trained, state.global_step


def check_constraints_satisfiable(config, predictor, sn_config, num_classes: int, size: tuple[int, int]) -> None:
    """Fail before hours of supernet training if even the space's smallest arch breaks a limit."""
    from autonad.supernet import arch_complexity

    smallest = predictor.space.smallest()
    broken = []
    if config.max_latency_ms is not None and predictor.predict(smallest) > config.max_latency_ms:
        broken.append(
            f"--max-latency-ms {config.max_latency_ms:g} (smallest arch: {predictor.predict(smallest):.2f} ms)"
        )
    if config.max_params is not None or config.max_flops is not None:
        size_of = arch_complexity(sn_config, smallest, size, num_classes)
        if config.max_params is not None and size_of.params > config.max_params:
            broken.append(f"--max-params {config.max_params:g} (smallest arch: {size_of.params:.3g})")
        if config.max_flops is not None and size_of.flops_fvcore > config.max_flops:
            broken.append(f"--max-flops {config.max_flops:g} (smallest arch: {size_of.flops_fvcore:.3g})")
    if broken:
        raise AutoNADError(f"no architecture in search space '{predictor.space.name}' satisfies {'; '.join(broken)}")


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


def search_run_dir(dataset: str, hw: str, recipe: str, runtime: str = "torch") -> Path:
    """runs/search/<dataset>__<device>[-<runtime>]__<recipe> (eager torch tables add no runtime)."""
    device = name_slug(Path(hw).stem) + ("" if runtime == "torch" else f"-{runtime}")
    return Path("runs/search") / f"{dataset_slug(dataset)}__{device}__{recipe_stem(recipe)}"


def ensure_supernet(
    run_dir: Path, recipe: Recipe, sn_config: SupernetConfig, source, tensorboard: bool = True, device: str = "auto"
) -> Path:
    """The supernet checkpoint for (dataset, supernet, recipe): reused when its training finished,
    else trained (or resumed) now."""
    from autonad.train.distributed import init_distributed
    from autonad.train.trainer import SupernetTrainer, finished_supernet

    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        if finished_supernet(checkpoint, recipe, sn_config, source.classes, source.fingerprint()):
            console.print(f"supernet: reusing {checkpoint}")
            return checkpoint
        console.print(f"supernet: resuming {checkpoint}")
    else:
        console.print(f"supernet: training {sn_config.name} on {source.name} with recipe {recipe.name} -> {run_dir}")
    trainer = SupernetTrainer(recipe, sn_config, source, run_dir, init_distributed(device))
    trainer.tensorboard = tensorboard
    trainer.fit(resume=checkpoint.exists())
    return checkpoint


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
