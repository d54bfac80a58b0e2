"""`--budget` / `--steps` / `--input-size` / `--scale`: parsing, recipe overrides, run folder names."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest

from autonad.cli import build_parser, main
from autonad.cli.common import apply_budget_args, duration_minutes, recipe_label
from autonad.cli.retrain import _epochs_for_tune
from autonad.errors import AutoNADError
from autonad.pipeline import search_run_dir, supernet_run_dir
from autonad.train.recipe import Recipe
from autonad.train.subnet import RetrainJob

BUDGET_COMMANDS = ("train-supernet", "search", "retrain", "tune")


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("45m", 45),
        ("2h", 120),
        ("1h30m", 90),
        ("90s", 1.5),
        ("30", 30),
        ("0.5", 0.5),
        ("1.5h", 90),
        ("1H", 60),
        ("2m30s", 2.5),
    ],  # fmt: skip
)
def test_duration_minutes(text, minutes):
    assert duration_minutes(text) == pytest.approx(minutes)


@pytest.mark.parametrize("text", ["abc", "0", "-5m", "0m", "", "m", "45x", "5m 3h", "1.2.3"])
def test_duration_minutes_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        duration_minutes(text)


@pytest.mark.parametrize("command", BUDGET_COMMANDS)
def test_every_budgeted_command_parses_the_budget_options(command):
    """Each command builds its parser (the options are added once) and parses them into args."""
    parser = build_parser()
    required = {"search": ["--hw", "cpu"], "retrain": ["--arch", "a.yaml"], "tune": ["--arch", "a.yaml"]}
    base = [command, *required.get(command, [])]
    args = parser.parse_args([*base, "--budget", "1h30m", "--input-size", "48x40", "--scale", "0.5"])
    assert (args.budget, args.steps, args.input_size, args.scale) == (90, None, (48, 40), 0.5)
    args = parser.parse_args([*base, "--steps", "7"])
    assert (args.budget, args.steps, args.input_size, args.scale) == (None, 7, None, None)


@pytest.mark.parametrize("command", ["train-supernet", "search", "retrain"])
def test_budget_and_steps_together_are_refused(command, capsys):
    required = {"search": ["--hw", "cpu"], "retrain": ["--arch", "a.yaml"]}
    with pytest.raises(SystemExit) as exit_:
        main([command, *required.get(command, []), "--budget", "45m", "--steps", "100"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value"), [("--steps", "0"), ("--budget", "-5m"), ("--input-size", "8x8")])
def test_bad_values_exit_2(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train-supernet", flag, value])
    assert exit_.value.code == 2
    assert flag in capsys.readouterr().err


def namespace(steps=None, budget=None, input_size=None, scale=None) -> argparse.Namespace:
    return argparse.Namespace(steps=steps, budget=budget, input_size=input_size, scale=scale)


def test_apply_budget_args_overrides_the_stage_and_names_it():
    base = Recipe.load("demo")
    recipe = apply_budget_args(base, namespace(steps=7, input_size=(48, 40)), "train")
    assert recipe.train.steps == 7 and recipe.train.minutes is None
    assert recipe.retrain == base.retrain  # the other stage keeps its budget
    assert recipe.input_size == (48, 40)
    assert recipe.name == f"{base.name}+train-s7+size48x40"
    retrain = apply_budget_args(base, namespace(budget=1.5, scale=0.5), "retrain")
    assert retrain.retrain.minutes == 1.5 and retrain.train == base.train
    assert retrain.transform.scale == 0.5 and retrain.name == f"{base.name}+retrain-1.5min+scale0.5"
    assert apply_budget_args(base, namespace(), "train") is base  # nothing given: the recipe itself


def test_recipe_label_carries_the_overrides():
    base = Recipe.load("demo")
    recipe = apply_budget_args(base, namespace(steps=7), "train")
    assert recipe_label(None, base, recipe) == f"{base.name}+train-s7"
    assert recipe_label("some/where/my-recipe.yaml", base, recipe) == "my-recipe+train-s7"
    assert recipe_label("my-recipe.yaml", base, base) == "my-recipe"


@pytest.mark.parametrize(
    "overrides", [namespace(budget=0.05), namespace(budget=1.5), namespace(scale=0.5), namespace(steps=7)]
)
def test_default_run_folders_keep_the_whole_label(overrides):
    """A run folder name must not cut the label at a dot ('+train-0.05min' is no file suffix): two
    budgets sharing a folder would resume, or reuse as finished, each other's supernet."""
    base = Recipe.load("demo")
    label = recipe_label(None, base, apply_budget_args(base, overrides, "train"))
    assert supernet_run_dir("synthetic", "tiny", label).name == f"synthetic__tiny__{label}"
    assert search_run_dir("synthetic", "cpu", label).name == f"synthetic__cpu__{label}"
    assert supernet_run_dir("synthetic", "tiny", "recipes/my-recipe.yaml").name == "synthetic__tiny__my-recipe"


def test_distinct_budgets_get_distinct_run_folders():
    base = Recipe.load("demo")
    folders = {
        supernet_run_dir("synthetic", "tiny", recipe_label(None, base, apply_budget_args(base, ns, "train")))
        for ns in (namespace(budget=0.05), namespace(budget=0.5), namespace(budget=0.25), namespace())
    }
    assert len(folders) == 4


def job_with(**retrain) -> RetrainJob:
    recipe = Recipe.load("demo")
    settings = dataclasses.replace(recipe.retrain, batch_size=4, **retrain)
    return RetrainJob(arch=None, config=None, recipe=dataclasses.replace(recipe, retrain=settings), checkpoint=None)


def test_tune_turns_steps_into_epochs_and_refuses_minutes():
    job = job_with(steps=11, epochs=500)
    tuned = _epochs_for_tune(job, train_images=21)  # 5 batches of 4 an epoch
    assert tuned.recipe.retrain.epochs == math.ceil(11 / 5) == 3
    assert tuned.recipe.retrain.steps is None and tuned.recipe.retrain.minutes is None
    assert _epochs_for_tune(job_with(steps=10), 21).recipe.retrain.epochs == 2
    plain = job_with(epochs=4)
    assert _epochs_for_tune(plain, 21) is plain
    with pytest.raises(AutoNADError, match="budgets retraining in minutes"):
        _epochs_for_tune(job_with(minutes=5.0), 21)


def test_retrain_epochs_replace_a_recipe_time_budget_and_conflict_with_budget_flags():
    from autonad.cli.retrain import _with_overrides

    recipe = Recipe.load("default-cpu")
    assert recipe.retrain.minutes == 30
    args = argparse.Namespace(epochs=5, steps=None, budget=None, input_size=None, scale=None, calibrate=None)
    settings = _with_overrides(recipe, args).retrain
    assert (settings.epochs, settings.steps, settings.minutes) == (5, None, None)
    with pytest.raises(AutoNADError, match="once"):
        _with_overrides(recipe, argparse.Namespace(**{**vars(args), "budget": 10.0}))
