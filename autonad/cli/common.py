"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from autonad.pipeline import check_output  # noqa: F401  (the CLI's commands import it from here)
from autonad.ui import pct


def input_size(text: str) -> tuple[int, int]:
    """Parse '320x320' (HxW) or '320' (square)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must look like 320x320, got '{text}'") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 16:
        raise argparse.ArgumentTypeError(f"input size must be HxW with both sides >= 16, got '{text}'")
    return values[0], values[1]


def duration_minutes(text: str) -> float:
    """Parse a wall-clock budget: '45m', '2h', '1h30m', '90s' or a plain number of minutes."""
    import re

    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text.lower())
    if text.replace(".", "", 1).isdigit():
        minutes = float(text)
    elif match and any(match.groups()):
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        minutes = 60 * h + m + s / 60
    else:
        raise argparse.ArgumentTypeError(f"a budget looks like 45m, 2h, 1h30m or 90s, got '{text}'")
    if minutes <= 0:
        raise argparse.ArgumentTypeError(f"a budget must be positive, got '{text}'")
    return minutes


def add_budget_args(parser: argparse.ArgumentParser, what: str) -> None:
    """--budget / --steps (the optimisation budget of `what`) and --input-size / --scale."""
    group = parser.add_argument_group("budget and input (override the recipe)")
    budget = group.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=duration_minutes, metavar="TIME",
                        help=f"wall-clock budget of {what} (45m, 2h, 1h30m); epochs follow from it")  # fmt: skip
    budget.add_argument("--steps", type=positive_int, help=f"optimiser steps of {what}; epochs follow from it")
    group.add_argument("--input-size", type=input_size, metavar="HxW",
                       help="network input in training (the crop size when the recipe trains on crops)")  # fmt: skip
    group.add_argument("--scale", type=float, help="train on crops of images resampled by this factor (1: native)")


def apply_budget_args(recipe, args: argparse.Namespace, stage: str):
    """The recipe with --budget/--steps on `stage` ("train" or "retrain") and --input-size/--scale."""
    recipe = recipe.with_budget(stage, steps=args.steps, minutes=args.budget)
    return recipe.with_input(args.input_size, args.scale)


def recipe_label(given: str | None, base, recipe) -> str:
    """The recipe's part of a run folder name: the file stem or name given, plus what overrides added."""

    return (Path(given).stem if given else base.name) + recipe.name.removeprefix(base.name)


def threshold(text: str) -> float:
    """A decision threshold: a finite number >= 0 (checked before any evaluation runs)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got '{text}'")
    return value


def positive_float(text: str) -> float:
    value = threshold(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def metrics_table(report, title: str):
    """The headline metrics of a `MetricsReport`, then the IoU of every class, as a rich table."""
    from rich.table import Table

    from autonad.export.inference import report_rows

    table = Table("metric", "value", title=title)
    for name, value in report_rows(report):
        table.add_row(name, pct(value))
    for name, value in report.per_class_iou.items():
        table.add_row(f"IoU {name}", pct(value))
    for name, rates in (report.per_class_sample or {}).items():
        table.add_row(f"sample recall {name}", pct(rates["recall"]))
    for name, rates in (report.per_class_cap or {}).items():
        table.add_row(f"CaP class recall {name}", pct(rates["recall"]))
    return table


def add_tensorboard_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                   help="write no TensorBoard logs (default: <run folder>/tensorboard)")  # fmt: skip


def add_device_option(p: argparse.ArgumentParser) -> None:
    """--device, one rule for every command (`autonad.train.distributed.pick_device`)."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to compute: auto (CUDA when present, else CPU), cpu or cuda")  # fmt: skip
