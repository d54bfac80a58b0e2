"""`autonad train-supernet`: train the supernet once per (dataset, supernet, recipe)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path

import torch
from rich.table import Table

from autonad.cli.common import (
    add_budget_args,
    add_device_option,
    add_tensorboard_option,
    apply_budget_args,
    check_output,
    pct,
    positive_int,
    recipe_label,
)
from autonad.data import absolute_reference
from autonad.pipeline import supernet_run_dir
from autonad.supernet import SupernetConfig
from autonad.train.checkpoint import load_checkpoint
from autonad.train.distributed import init_distributed, shutdown
from autonad.train.ray_train import RayTrainJob, fit_on_ray
from autonad.train.recipe import Recipe, default_recipe
from autonad.train.trainer import CHECKPOINT_FORMAT, SupernetTrainer
from autonad.ui import console, fit_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-supernet", help="train a supernet on a dataset (resumable; torchrun for DDP)")
    add_data_options(p)
    p.add_argument(
        "--recipe", help="recipe name or YAML path (default: <dataset>-cpu without a GPU, demo for synthetic)"
    )
    p.add_argument("--supernet", help="supernet definition name or YAML path (default: the recipe's)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/supernet/<dataset>__<supernet>__<recipe>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument(
        "--max-epochs", type=positive_int, help="stop after this many epochs (the schedule stays the recipe's)"
    )
    add_device_option(p)
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    add_ray_train_options(p)
    add_budget_args(p, "supernet training")
    add_tensorboard_option(p)
    p.set_defaults(func=train_supernet)


def add_ray_train_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("Ray Train (DDP over Ray workers: one machine or a cluster)")
    group.add_argument("--workers", type=positive_int,
                       help="train on this many Ray Train workers (DDP; they split the recipe's batch)")  # fmt: skip
    group.add_argument("--ray-address", help="run the workers on the Ray cluster at HOST:PORT (or auto)")


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", default="synthetic", help="synthetic | ksdd2 | mt | neu-seg | msd | voc:ROOT | folder:ROOT"
    )
    p.add_argument("--data-root", help="the dataset's folder (default: $AUTONAD_DATA/<name> or ./data/<name>)")
    p.add_argument("--skip-bad", action="store_true", help="skip (and list) unreadable or inconsistent files")


def train_supernet(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    base = Recipe.load(args.recipe or default_recipe(args.dataset))
    recipe = apply_budget_args(base, args, "train")
    config = SupernetConfig.load(args.supernet or recipe.supernet)
    label = recipe_label(args.recipe, base, recipe)
    run_dir = args.out or supernet_run_dir(args.dataset, args.supernet or recipe.supernet, label)
    check_output(run_dir)
    job = RayTrainJob(functools.partial(SupernetTrainer, recipe, config), args.dataset, args.data_root,
                      recipe.train.seed, run_dir.resolve(), args.resume, args.skip_bad, args.max_epochs,
                      args.tensorboard, args.device, args.threads)  # fmt: skip
    if args.workers or args.ray_address:
        source = job.open_checked()
        dataset, root = absolute_reference(args.dataset, source)  # the workers run in folders of their own
        job = dataclasses.replace(job, dataset=dataset, data_root=root)
        console.print(f"training supernet [bold]{config.name}[/] on [bold]{source.name}[/] with recipe "
                      f"[bold]{recipe.name}[/] -> {run_dir} ({on_ray(args)})")  # fmt: skip
        fit_on_ray(job, args.workers or 1, args.ray_address)
        print_summary(print_stopped(run_dir / "checkpoint.pt", CHECKPOINT_FORMAT)["history"], run_dir)
        return 0
    dist = init_distributed(args.device)
    try:
        trainer = job.trainer(dist)
        if dist.is_main:
            procs = f" ({dist.world} processes)" if dist.enabled else ""
            console.print(f"training supernet [bold]{config.name}[/] on [bold]{trainer.source.name}[/] with recipe "
                          f"[bold]{recipe.name}[/] -> {run_dir}{procs}")  # fmt: skip
            for message in trainer.source.bad:
                console.print(f"[yellow]skipped:[/] {message}")
        state = trainer.fit(resume=args.resume)
    finally:
        shutdown(dist)
    if dist.is_main:
        print_summary(state.history, run_dir)
    return 0


def print_stopped(path: Path, kind: str) -> dict:
    """The finished run's checkpoint, saying so where it stopped before its budget (--max-epochs)."""
    ckpt = load_checkpoint(path, kind)
    state = ckpt["state"]
    if state["global_step"] < state.get("total_steps", 0):
        console.print(f"stopped after step {state['global_step']}/{state['total_steps']}; continue with --resume")
    return ckpt


def on_ray(args: argparse.Namespace) -> str:
    cluster = f"the Ray cluster at {args.ray_address}" if args.ray_address else "a local Ray"
    return f"{args.workers or 1} Ray Train workers on {cluster}"


def print_summary(history: list[dict], run_dir: Path) -> None:
    last_val = next((h for h in reversed(history) if "val" in h), None)
    if last_val is not None:
        table = Table("subnet", "mIoU", "mIoU (defects)", "mF1", "Sample_mIoU", "Seg_Recall",
                      title=f"validation after epoch {last_val['epoch']}")  # fmt: skip
        for name, m in last_val["val"].items():
            table.add_row(name, *(pct(m[k]) for k in ("miou", "miou_fg", "mf1", "sample_miou", "seg_recall")))
        console.print(fit_table(table, ("mF1", "Sample_mIoU", "Seg_Recall")))
    console.print(f"run folder: {run_dir} (checkpoint.pt, history.jsonl, run.yaml, split.json)")
