"""Hyperparameter tuning of subnet retraining with Ray Tune and ASHA (`autonad tune`).

Each trial retrains the arch (`SubnetTrainer`) with sampled lr, weight decay, Dice weight and, when
the arch has a CaP head, CaP loss weight, and reports the validation metrics after every epoch with
its run folder as a Tune checkpoint. ASHA stops the weak trials early; a trial that is moved or
resumed (`Tuner.restore`) continues from its last checkpoint exactly, like `autonad retrain
--resume`. The best trial's settings become a recipe (`best_recipe.yaml`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from autonad.data import open_dataset
from autonad.errors import AutoNADError, reason
from autonad.train.distributed import DistInfo, pick_device
from autonad.train.recipe import Recipe
from autonad.train.subnet import RetrainJob, SubnetTrainer
from autonad.ui import progress

# Sampled settings of the recipe's `retrain` section: (Tune sampler, low, high); w_cls only with CaP.
RANGES = {"lr": ("loguniform", 1e-5, 3e-3), "weight_decay": ("loguniform", 1e-4, 1e-1),
          "dice_weight": ("uniform", 0.0, 2.0), "w_cls": ("uniform", 0.1, 1.0)}  # fmt: skip


@dataclass(frozen=True)
class TuneJob:
    """Everything a trial needs, plain and picklable (it travels to Ray workers); paths absolute."""

    retrain: RetrainJob
    dataset: str
    data_root: str | None
    skip_bad: bool
    trials_dir: Path
    threads: int = 1
    tensorboard: bool = True  # each trial's scalars under its folder
    gpus: float = 0.0  # the share of a GPU each trial asks Ray for (0: CPU trials)

    @property
    def resources(self) -> dict[str, float]:
        return {"cpu": self.threads, **({"gpu": self.gpus} if self.gpus else {})}

    @property
    def metric(self) -> str:
        return self.retrain.recipe.retrain.select

    def recipe_for(self, params: dict[str, float]) -> Recipe:
        """The recipe with a trial's sampled settings (validated every epoch: ASHA needs each one)."""
        recipe = self.retrain.recipe
        return dataclasses.replace(recipe, retrain=dataclasses.replace(recipe.retrain, **params, val_every=1))


def param_space(cap: bool) -> dict[str, Any]:
    return {name: getattr(tune, kind)(low, high) for name, (kind, low, high) in RANGES.items()
            if cap or name != "w_cls"}  # fmt: skip


def run_trial(params: dict[str, float], job: TuneJob) -> None:
    """One Tune trial: retrain with `params`, report after every epoch (continues from Tune's checkpoint)."""
    torch.set_num_threads(job.threads)
    run_dir = job.trials_dir / tune.get_context().get_trial_id()
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.copytree(saved, run_dir)
    trial = dataclasses.replace(job.retrain, recipe=job.recipe_for(params))
    source = open_dataset(job.dataset, job.data_root, seed=trial.recipe.retrain.seed, skip_bad=job.skip_bad)
    trainer = trial.trainer(source, run_dir, DistInfo(device=pick_device("cuda" if job.gpus else "cpu")))

    def report(tr: SubnetTrainer) -> None:
        val = tr.state.history[-1]["val"]
        metrics = {k: (-1.0 if v is None else float(v)) for k, v in val.items()}
        metrics.update(epoch=tr.state.epoch, loss=tr.state.history[-1]["loss"])
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(run_dir)))

    trainer.on_epoch_end = report
    trainer.tensorboard = job.tensorboard
    trainer.fit(resume=checkpoint is not None)


@dataclass
class TuneResult:
    params: dict[str, float]  # the best trial's settings
    value: float  # its best validation value of the job's metric
    rows: list[dict[str, Any]]  # one per trial that reported: settings, best value, epochs run
    failures: list[str]  # the last line of each failed trial's error


def tune_retraining(
    job: TuneJob, storage: Path, samples: int, grace_period: int, concurrent: int, resume: bool
) -> TuneResult:
    """Run (or resume) the study in `storage/study`."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic reporter honours verbose=0: our bar only
    trainable = tune.with_resources(tune.with_parameters(run_trial, job=job), job.resources)
    epochs = job.retrain.recipe.retrain.epochs
    with progress() as bar:
        task = bar.add_task(f"tuning {samples} trials x {epochs} epochs (ASHA)", total=samples * epochs)
        ProgressCallback.advance = lambda n: bar.update(task, advance=n)
        run_config = tune.RunConfig(name="study", storage_path=str(storage), verbose=0,
                                    callbacks=[ProgressCallback(epochs)],
                                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1))  # fmt: skip
        if resume and tune.Tuner.can_restore(str(storage / "study")):
            tuner = tune.Tuner.restore(str(storage / "study"), trainable, resume_unfinished=True, resume_errored=True)
        else:
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=grace_period,
                                      reduction_factor=3)  # fmt: skip
            tuner = tune.Tuner(
                trainable,
                param_space=param_space(job.retrain.arch.heads.cap_head),
                tune_config=tune.TuneConfig(
                    metric=job.metric,
                    mode="max",
                    scheduler=scheduler,
                    num_samples=samples,
                    max_concurrent_trials=concurrent,
                ),  # fmt: skip
                run_config=run_config,
            )
        try:
            results = tuner.fit()
        finally:
            ProgressCallback.advance = None
    reported = [r for r in results if r.metrics_dataframe is not None and job.metric in r.metrics_dataframe]
    if not reported:
        error = next((reason(r.error, last=True) for r in results if r.error), "no trial reported a result")
        raise AutoNADError(f"tuning failed: no trial finished an epoch ({error})")
    rows = [_row(r, job.metric) for r in reported]
    rows.sort(key=lambda row: (-row[f"best_{job.metric}"], row["trial"]))  # best first; ties by trial name
    best = rows[0]
    params = {k: best[k] for k in RANGES if k in best}
    failures = [reason(r.error, last=True) for r in results if r.error]
    return TuneResult(params, best[f"best_{job.metric}"], rows, failures)


def _row(result, metric: str) -> dict[str, Any]:
    frame = result.metrics_dataframe
    trial = str(result.metrics.get("trial_id") or Path(result.path).name)
    return {"trial": trial, **result.config, f"best_{metric}": float(frame[metric].max()),
            "epochs": int(frame["training_iteration"].max())}  # fmt: skip


class ProgressCallback(tune.Callback):
    """Advances the driver's progress bar by one per reported epoch, and by the rest when ASHA stops a
    trial. Tune pickles its callbacks with the study (and restores them on resume), so the bar is
    reached through a module-level hook instead of being held."""

    advance: Callable[[int], None] | None = None  # set by `tune_retraining` while it runs

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.seen: dict[str, int] = {}

    def _advance(self, n: int) -> None:
        if ProgressCallback.advance is not None:
            ProgressCallback.advance(n)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen[trial.trial_id] = self.seen.get(trial.trial_id, 0) + 1
        self._advance(1)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._advance(max(0, self.epochs - self.seen.get(trial.trial_id, 0)))
