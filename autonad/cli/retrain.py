"""`autonad retrain`: train a searched arch as a standalone model on a (new) dataset, then
calibrate its sample decision, report every metric on the test split and export it."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rich.table import Table

from autonad.cli.common import (
    add_budget_args,
    add_device_option,
    add_tensorboard_option,
    apply_budget_args,
    check_output,
    metrics_table,
    positive_int,
)
from autonad.cli.latency import add_runtime_option
from autonad.cli.train import add_data_options, add_ray_train_options, on_ray, print_stopped
from autonad.config import write_text_atomic
from autonad.data import SegSource, absolute_reference, open_dataset
from autonad.decision import CURVE_FILE, Decision
from autonad.errors import AutoNADError
from autonad.export import FORMATS
from autonad.metrics import RULES, parse_target
from autonad.pipeline import TuneRequest, dataset_slug, finish_retrain, predictor_for, run_tune
from autonad.space import Arch
from autonad.supernet import SupernetConfig
from autonad.supernet.config import saved_config
from autonad.train.checkpoint import load_checkpoint
from autonad.train.ray_train import RayTrainJob, fit_on_ray
from autonad.train.recipe import Recipe, default_recipe
from autonad.train.subnet import RETRAIN_FORMAT, RetrainJob
from autonad.train.trainer import CHECKPOINT_FORMAT
from autonad.ui import console, fit_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="retrain a searched arch as a standalone model (new classes welcome)")
    p.add_argument("--arch", type=Path, required=True, help="arch YAML, e.g. runs/search/<run>/best_arch.yaml")
    add_data_options(p)
    add_retrain_options(p)
    p.add_argument("--calibrate", metavar="TARGET",
                   help="choose the sample decision threshold on validation: 'recall>=0.95', 'precision>=0.9', "
                        "'f1', 'accuracy' or 'precision+recall' (stored with the model)")  # fmt: skip
    p.add_argument("--rule", choices=tuple(RULES),
                   help="the decision rule --calibrate tunes (default: the recipe's retrain.rule, seg); "
                        "the CaP rules need a trained CaP presence output")  # fmt: skip
    p.add_argument("--per-class", action="store_true",
                   help="with --calibrate: also tune each defect class's own sample tau, CaP class-stage threshold "
                        "and mask pixel threshold (for the class's IoU) on validation")  # fmt: skip
    p.add_argument("--hw", help="also store the predicted latency on this device with the model")
    add_runtime_option(p)
    p.add_argument("--format", nargs="+", choices=FORMATS, default=["torchscript", "onnx"], dest="formats")
    p.add_argument("--out", type=Path, help="run folder (default: runs/retrain/<dataset>__<arch>__<init>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--max-epochs", type=positive_int, help="stop after this many epochs (the schedule stays)")
    add_device_option(p)
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    add_ray_train_options(p)
    p.set_defaults(func=retrain)

    t = sub.add_parser("tune", help="tune retraining hyperparameters with Ray Tune (ASHA); writes the best recipe")
    t.add_argument("--arch", type=Path, required=True, help="arch YAML, e.g. runs/search/<run>/best_arch.yaml")
    add_data_options(t)
    add_retrain_options(t)
    t.add_argument("--samples", type=positive_int, default=8, help="trials (sampled settings; default 8)")
    t.add_argument("--grace-period", type=positive_int, default=1, help="epochs before ASHA may stop a trial")
    t.add_argument("--concurrent", type=positive_int, help="trials at once (default: one per CPU Ray has)")
    t.add_argument("--threads", type=positive_int, default=1, help="torch threads (and Ray CPUs) per trial")
    t.add_argument("--ray-address", help="join this Ray cluster (HOST:PORT, ray://HOST:PORT or auto)")
    add_device_option(t)
    t.add_argument("--out", type=Path, help="study folder (default: runs/tune/<dataset>__<arch>__<init>)")
    t.add_argument("--resume", action="store_true", help="continue the study in --out (finished trials are kept)")
    t.set_defaults(func=tune)


def add_retrain_options(p: argparse.ArgumentParser) -> None:
    """Options `retrain` and `tune` share: where the weights start, which recipe, the CaP head."""
    p.add_argument("--init", choices=("supernet", "scratch"),
                   help="start from the trained supernet's weights or from scratch (default: supernet when one "
                        "is known: --supernet, or the summary.yaml beside --arch)")  # fmt: skip
    p.add_argument("--supernet", type=Path, help="trained supernet checkpoint the arch was searched in")
    p.add_argument("--recipe", help="recipe name or YAML (its `retrain` section; default: the dataset's)")
    add_tensorboard_option(p)
    p.add_argument("--cap", action=argparse.BooleanOptionalAction,
                   help="train with the Classifier-as-Plugin head (default: as the arch says)")  # fmt: skip
    p.add_argument("--epochs", type=positive_int, help="retraining epochs (default: the recipe's)")
    add_budget_args(p, "retraining")


def resolve_job(args: argparse.Namespace) -> RetrainJob:
    arch = Arch.load(args.arch)
    known = args.supernet or _supernet_beside(args.arch)
    init = args.init or ("supernet" if known else "scratch")
    if init == "supernet" and known is None:
        raise AutoNADError(f"--init supernet: no supernet known for {args.arch}; pass --supernet CHECKPOINT")
    recipe = _with_overrides(Recipe.load(args.recipe or default_recipe(args.dataset)), args)
    config = _supernet_config(known) if known is not None else SupernetConfig.load(recipe.supernet)
    job = RetrainJob.for_arch(arch, config, recipe, known if init == "supernet" else None, args.cap, str(args.arch))
    rule = job.recipe.retrain.rule
    if rule != "seg" and not job.arch.heads.cap:
        raise AutoNADError(f"--rule {rule}: needs the CaP presence output, and the arch retrains without it "
                           "(add --cap, on a supernet with a CaP head)")  # fmt: skip
    return job


def _with_overrides(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    """The recipe with --epochs, --budget/--steps, --input-size/--scale and --calibrate applied."""
    if args.epochs and (args.steps or args.budget):
        raise AutoNADError("give the retraining budget once: --epochs, --steps or --budget")
    recipe = apply_budget_args(recipe, args, "retrain")
    settings = recipe.retrain
    if args.epochs:  # epochs replace the recipe's steps or minutes
        settings = dataclasses.replace(settings, epochs=args.epochs, steps=None, minutes=None)
    if getattr(args, "calibrate", None):
        settings = dataclasses.replace(settings, calibrate=str(parse_target(args.calibrate)))
    if getattr(args, "rule", None):
        if not settings.calibrate:
            raise AutoNADError("--rule: give the target to calibrate it for with --calibrate (e.g. 'recall>=0.95')")
        settings = dataclasses.replace(settings, rule=args.rule)
    if getattr(args, "per_class", False):
        if not settings.calibrate:
            raise AutoNADError("--per-class: give the target to calibrate for with --calibrate (e.g. 'recall>=0.95')")
        settings = dataclasses.replace(settings, per_class=True)
    return dataclasses.replace(recipe, retrain=settings)


def _supernet_config(checkpoint: Path) -> SupernetConfig:
    """The supernet definition a training checkpoint was made with (without loading its weights)."""
    config = load_checkpoint(checkpoint, CHECKPOINT_FORMAT).get("supernet_config")
    if config is None:
        raise AutoNADError(f"{checkpoint}: incomplete supernet checkpoint (no supernet_config)")
    return saved_config(config, f"{checkpoint}: supernet_config")


def _supernet_beside(arch_file: Path) -> Path | None:
    """The supernet of the search run an arch file belongs to (its summary.yaml), if any."""
    from autonad.search.outputs import search_supernet

    return search_supernet(arch_file.parent)


def retrain(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    job = resolve_job(args)
    out = args.out or Path("runs/retrain") / f"{dataset_slug(args.dataset)}__{job.arch.hash[:8]}__{job.init}"
    check_output(out)
    source = open_dataset(args.dataset, args.data_root, seed=job.recipe.retrain.seed, skip_bad=args.skip_bad)
    for message in source.bad:
        console.print(f"[yellow]skipped:[/] {message}")
    predictor = None
    if args.hw:  # a wrong device or a missing profile is refused before training, not after it
        predictor = predictor_for(args.hw, job.config.search_space, job.recipe.input_size, 1, source.num_classes,
                                  args.runtime)  # fmt: skip
    heads = "with CaP" if job.arch.heads.cap_head else "without CaP"
    start = f"supernet weights ({job.checkpoint})" if job.checkpoint else "scratch"
    what = (f"retraining arch [bold]{job.arch.hash}[/] ({heads}) on [bold]{source.name}[/] from {start}, recipe "
            f"[bold]{job.recipe.name}[/] -> {out}")  # fmt: skip
    if args.workers or args.ray_address:
        absolute = dataclasses.replace(job, checkpoint=job.checkpoint.resolve() if job.checkpoint else None)
        dataset, root = absolute_reference(args.dataset, source)
        ray_job = RayTrainJob(absolute.trainer, dataset, root, job.recipe.retrain.seed, out.resolve(), args.resume,
                              args.skip_bad, args.max_epochs, args.tensorboard, args.device, args.threads)  # fmt: skip
        ray_job.open_checked(source)  # the source opened above, not a second one
        console.print(f"{what} ({on_ray(args)})")
        fit_on_ray(ray_job, args.workers or 1, args.ray_address)
        print_stopped(out / "checkpoint.pt", RETRAIN_FORMAT)
    elif not train_here(job, source, out, args, what):
        return 0  # a torchrun rank other than 0: rank 0 reports
    result = finish_retrain(out, source, job.recipe.retrain, args.formats, predictor)
    print_result(result, out)
    return 0


def train_here(job: RetrainJob, source: SegSource, out: Path, args: argparse.Namespace, what: str) -> bool:
    """Retrain in this process (one of torchrun's, where it started us); whether this is rank 0."""
    from autonad.train.distributed import init_distributed, shutdown

    dist = init_distributed(args.device)
    try:
        if dist.is_main:
            console.print(what)
        trainer = job.trainer(source, out, dist, args.max_epochs)
        trainer.tensorboard = args.tensorboard
        state = trainer.fit(resume=args.resume)
    finally:
        shutdown(dist)
    if dist.is_main and trainer.new_heads:
        console.print(f"new class heads (the supernet knew other classes): {', '.join(trainer.new_heads)}")
    if dist.is_main and state.global_step < trainer.total_steps:
        console.print(f"stopped after step {state.global_step}/{trainer.total_steps}; continue with --resume")
    return dist.is_main


def print_result(result: dict, out: Path) -> None:
    meta, report = result["meta"], result["report"]
    title = f"best epoch {meta['best_epoch']} on {meta['retrained_on']} {result['split']} ({report.num_samples} images)"
    console.print(metrics_table(report, title))
    decision = Decision.from_dict(meta.get("decision") or {}, "decision")
    console.print(f"decision: {decision.describe()}")
    if decision.target:
        console.print(f"calibration curve: {out / CURVE_FILE}")
    for fmt, path in result["files"].items():
        console.print(f"{fmt}: {path}")
    console.print(f"report: {result['page']}")
    console.print(f"run folder: {out} (best.pt, checkpoint.pt, history.jsonl, metrics.json, split.json, tensorboard/, "
                  "evaluation/)")  # fmt: skip


def _epochs_for_tune(job: RetrainJob, train_images: int) -> RetrainJob:
    """ASHA compares trials epoch by epoch: a step budget becomes the epochs it spans; minutes are refused."""
    import math

    from autonad.train.batches import batches_per_epoch

    settings = job.recipe.retrain
    if settings.minutes is not None:
        raise AutoNADError(
            f"tune: recipe '{job.recipe.name}' budgets retraining in minutes, but ASHA stops trials by epoch: "
            "give --epochs or --steps"
        )
    if settings.steps is None:
        return job
    epochs = math.ceil(settings.steps / max(1, batches_per_epoch(train_images, settings.batch_size)))
    settings = dataclasses.replace(settings, epochs=epochs, steps=None)
    return dataclasses.replace(job, recipe=dataclasses.replace(job.recipe, retrain=settings))


def tune(args: argparse.Namespace) -> int:
    from autonad.config import dump_yaml
    from autonad.train.tune import param_space

    job = resolve_job(args)
    out = (args.out or Path("runs/tune") / f"{dataset_slug(args.dataset)}__{job.arch.hash[:8]}__{job.init}").resolve()
    check_output(out)
    if (out / "study").exists() and not args.resume:
        raise AutoNADError(f"{out}: already holds a tuning study; pass --resume or choose another --out")
    source = open_dataset(args.dataset, args.data_root, seed=job.recipe.retrain.seed, skip_bad=args.skip_bad)
    source.verify()  # a bad file is one line now, not a Ray traceback per trial and a study left behind
    job = _epochs_for_tune(job, len(source.splits["train"]))
    request = TuneRequest(
        job,
        args.dataset,
        source,
        out,
        args.samples,
        args.grace_period,
        args.concurrent,
        args.threads,
        args.resume,
        args.skip_bad,
        args.ray_address,
        args.device,
        args.tensorboard,
    )
    tuned = ", ".join(param_space(job.arch.heads.cap_head))
    console.print(f"tuning {tuned} for arch [bold]{job.arch.hash}[/] on [bold]{source.name}[/]: {args.samples} "
                  f"trials, {job.recipe.retrain.epochs} epochs, ASHA -> {out}")  # fmt: skip
    best, result = run_tune(request)
    metric = job.recipe.retrain.select
    dump_yaml(best.to_dict(), out / "best_recipe.yaml")
    write_text_atomic(out / "trials.json", json.dumps(result.rows, indent=1) + "\n")
    print_trials(result.rows, metric)
    if result.failures:
        console.print(f"[yellow]{len(result.failures)} trial(s) failed[/], e.g.: {result.failures[0]}")
    console.print(f"best recipe: {out / 'best_recipe.yaml'} (autonad retrain --recipe {out / 'best_recipe.yaml'} ...)")
    return 0


def print_trials(rows: list[dict], metric: str) -> None:
    """One row per trial, best first (as `tune_retraining` orders them), the best highlighted."""
    keys = [k for k in rows[0] if k not in ("trial", f"best_{metric}", "epochs")]
    table = Table("trial", *keys, f"best val {metric}", "epochs", title="tuning trials (ASHA stops weak ones early)")
    for i, row in enumerate(rows):
        table.add_row(row["trial"], *(f"{row[k]:.3g}" for k in keys), f"{row[f'best_{metric}']:.4f}",
                      str(row["epochs"]), style="bold green" if i == 0 else None)  # fmt: skip
    console.print(fit_table(table))
