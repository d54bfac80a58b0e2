"""Training budgets in steps or minutes, positive oversampling and CaP switched off on all-defective data.

The runs use the tiny set-up of conftest.py (21 training images, batch 4: 5 steps an epoch, 32x32).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from autonad.cli import main
from autonad.data import SyntheticSource, open_dataset
from autonad.data.folder import write_folder
from autonad.errors import AutoNADError
from autonad.supernet import SupernetConfig
from autonad.train.batches import EpochBatches
from autonad.train.checkpoint import rng_state
from autonad.train.loop import Trainer, finished, steps_within
from autonad.train.recipe import Recipe, TrainingSettings
from autonad.train.trainer import SupernetTrainer

from .conftest import TRAIN, TinyRun, assert_same_training, checkpoint, make_tiny_run

STEPS_PER_EPOCH = 5  # 21 train images (70% of 32) // batch 4
FAST = {"latency_every": 0, "checkpoint_steps": 1}


@pytest.fixture(autouse=True)
def _keep_threads():
    """`--threads 1` sets torch's threads for the whole process: put them back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def train_args(run: TinyRun, *extra: str) -> list[str]:
    """`train-supernet` on the tiny run without --out: the default run folder under the cwd."""
    return ["train-supernet", "--dataset", run.dataset, "--recipe", str(run.recipe), "--supernet", str(run.supernet),
            "--threads", "1", *extra]  # fmt: skip


def only_run_folder(root: Path) -> Path:
    folders = list((root / "runs" / "supernet").iterdir())
    assert len(folders) == 1, folders
    return folders[0]


# ---------------------------------------------------------------------------------------------- a steps budget
@pytest.fixture(scope="module")
def seven_steps(tiny_data, tmp_path_factory) -> tuple[TinyRun, Path, Path]:
    """`--steps 7` uninterrupted in its default run folder, and a copy of that folder as it was at step 6
    (in the second, cut-short epoch)."""
    root = tmp_path_factory.mktemp("budget-steps")
    run = make_tiny_run(root, tiny_data, **FAST)
    snapshot = root / "at-step-6"
    save = SupernetTrainer.save

    def save_and_snapshot(trainer: SupernetTrainer) -> None:
        save(trainer)
        if trainer.state.global_step == 6 and not snapshot.exists():
            shutil.copytree(trainer.run_dir, snapshot)

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(SupernetTrainer, "save", save_and_snapshot)
        assert main(train_args(run, "--steps", "7")) == 0
    torch.set_num_threads(threads)
    return run, only_run_folder(root), snapshot


def test_a_steps_budget_ends_at_that_step(seven_steps):
    run, out, _ = seven_steps
    assert out.name.endswith("__tiny-x__tiny-test+train-s7")  # the override names its own run folder
    ckpt = checkpoint(out)
    state, history = ckpt["state"], ckpt["history"]
    assert state["global_step"] == 7 and state["total_steps"] == 7 and state["step_in_epoch"] == 0
    epochs = math.ceil(7 / STEPS_PER_EPOCH)
    assert state["epoch"] == epochs == 2
    assert [h["epoch"] for h in history] == [1, 2]
    assert [h["step"] for h in history] == [5, 7]  # the last epoch is cut short at the budget
    assert all("val" in h for h in history)  # the cut-short epoch is still validated
    assert "7 steps" in state["budget_note"]
    # the schedule spans the 7 steps: no warm-up (a tenth of 7 is 0), cosine down to min_lr_ratio * lr
    assert ckpt["scheduler"]["last_epoch"] == 7
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.01 * TRAIN["lr"], rel=1e-6)
    assert history[1]["lr"] < history[0]["lr"] < TRAIN["lr"]
    info = yaml.safe_load((out / "run.yaml").read_text())
    assert info["budget"]["steps"] == 7 and info["budget"]["epochs"] == 2
    assert info["recipe"]["train"]["steps"] == 7 and info["recipe"]["name"] == "tiny-test+train-s7"
    assert info["cap_loss"] is True  # tiny_data has defect-free training images
    assert all("presence" in h and "classes" in h for h in history)  # tiny: multi-label, 3 defect classes
    assert info["class_loss"] is True


def test_resuming_a_finished_steps_run_does_nothing(seven_steps, monkeypatch):
    run, out, _ = seven_steps
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "history.jsonl", "run.yaml")}
    monkeypatch.chdir(out.parent.parent.parent)  # the default folder again
    steps = []
    monkeypatch.setattr(SupernetTrainer, "_step", lambda self, *a: steps.append(1) or {})
    assert main(train_args(run, "--steps", "7", "--resume")) == 0
    assert not steps
    assert {name: (out / name).read_bytes() for name in before} == before


def test_steps_run_stopped_by_max_epochs_then_resumed_equals_an_uninterrupted_one(seven_steps, tmp_path):
    run, expected, _ = seven_steps
    out = tmp_path / "stopped"
    assert main(run.args(out, "--steps", "7", "--max-epochs", "1")) == 0
    state = checkpoint(out)["state"]
    assert (state["epoch"], state["global_step"], state["total_steps"]) == (1, 5, 7)
    assert not finished(state, Recipe.load(run.recipe).train)
    assert main(run.args(out, "--steps", "7", "--resume")) == 0
    assert_same_training(expected, out)


def test_a_run_checkpointed_before_the_cap_class_stage_resumes_without_it(seven_steps, tmp_path, capsys):
    """Its per-step losses named CaP's presence loss `cls` and it had no class stage: it resumes as trained."""
    from autonad.train.checkpoint import save_atomic

    run, _, snapshot = seven_steps
    old = Path(shutil.copytree(snapshot, tmp_path / "old"))
    ckpt = checkpoint(old)
    assert ckpt["state"]["global_step"] == 6 and ckpt["state"]["epoch_losses"]  # mid-epoch
    del ckpt["class_loss"]
    ckpt["state"]["epoch_losses"] = [{("cls" if k == "presence" else k): v for k, v in d.items() if k != "classes"}
                                     for d in ckpt["state"]["epoch_losses"]]  # fmt: skip
    # uncertainty weighting had a log-variance per stage: 2 then, not 3 (in the loss and its Adam moments)
    ckpt["loss"]["log_vars"] = ckpt["loss"]["log_vars"][:2]
    moments = [v for v in ckpt["optimizer"]["state"].values() if v["exp_avg"].shape == (3,)]
    assert len(moments) == 1
    moments[0].update({k: moments[0][k][:2] for k in ("exp_avg", "exp_avg_sq")})
    save_atomic(ckpt, old / "checkpoint.pt")
    assert main(run.args(old, "--steps", "7", "--resume")) == 0
    assert "the run being resumed was started without it" in capsys.readouterr().out.replace("\n", " ")
    done = checkpoint(old)
    assert done["class_loss"] is False and done["state"]["global_step"] == 7
    assert "presence" in done["history"][-1] and "cls" not in done["history"][-1]


def test_resume_inside_the_cut_short_last_epoch(seven_steps):
    run, expected, snapshot = seven_steps
    state = checkpoint(snapshot)["state"]
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 6)
    assert main(run.args(snapshot, "--steps", "7", "--resume")) == 0
    assert_same_training(expected, snapshot)


def test_resume_with_another_budget_is_refused(seven_steps, tmp_path, capsys):
    run, out, _ = seven_steps
    copy = Path(shutil.copytree(out, tmp_path / "copy"))
    assert main(run.args(copy, "--steps", "9", "--resume")) == 2
    assert "it has changed" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- a minutes budget
def test_a_minutes_budget_measures_plans_and_ends_within_it(tiny_data, tmp_path, monkeypatch):
    run = make_tiny_run(tmp_path, tiny_data, **FAST)
    monkeypatch.chdir(tmp_path)
    probes = []
    probe = Trainer._probe_seconds
    monkeypatch.setattr(Trainer, "_probe_seconds", lambda self, *a: probes.append(probe(self, *a)) or probes[-1])
    assert main(train_args(run, "--budget", "0.05")) == 0
    out = only_run_folder(tmp_path)
    assert out.name.endswith("__tiny-x__tiny-test+train-0.05min")
    assert len(probes) == 1 and all(s > 0 for s in probes[0])
    state, history = checkpoint(out)["state"], checkpoint(out)["history"]
    total = state["total_steps"]
    assert state["global_step"] == total >= 1 and len(history) == math.ceil(total / STEPS_PER_EPOCH)
    assert history[-1]["step"] == total
    assert state["elapsed_s"] <= 0.05 * 60 * 1.5 + 1.0  # re-planned after each epoch at the measured speed
    assert state["validations"] == len([h for h in history if "val" in h]) and state["val_s"] > 0
    note = state["budget_note"]
    assert note.startswith("0.05 min -> ") and "s/step" in note and "s/validation" in note
    info = yaml.safe_load((out / "run.yaml").read_text())
    assert info["budget"]["how"].startswith("0.05 min -> ")  # the first plan, from the timed steps


def test_a_time_budget_replans_from_the_measured_speed(tiny_data, tmp_path, monkeypatch):
    run = make_tiny_run(tmp_path, tiny_data, **FAST)
    out = tmp_path / "run"
    # a probe that claims 2 s/step (one-time kernel set-up inflates real probes) plans 1 step for 3 s;
    # after the first epoch the measured speed (milliseconds) re-plans far more steps
    monkeypatch.setattr(Trainer, "_probe_seconds", lambda self, *a: (2.0, 0.1))
    assert main(run.args(out, "--budget", "0.05")) == 0
    state = checkpoint(out)["state"]
    assert state["global_step"] == state["total_steps"] > STEPS_PER_EPOCH
    assert "planned at step" in state["budget_note"]


def test_a_resumed_minutes_run_keeps_its_plan_and_does_not_measure_again(tiny_data, tmp_path, monkeypatch):
    run = make_tiny_run(tmp_path, tiny_data, **FAST)
    out = tmp_path / "run"
    monkeypatch.setattr(Trainer, "_probe_seconds", lambda self, *a: (0.2, 0.4))
    assert main(run.args(out, "--budget", "0.05", "--max-epochs", "1")) == 0
    first = checkpoint(out)["state"]
    assert first["global_step"] == STEPS_PER_EPOCH and first["total_steps"] >= first["global_step"]

    def no_probe(self, *args):
        raise AssertionError("a resumed run must not measure again")

    monkeypatch.setattr(Trainer, "_probe_seconds", no_probe)
    assert main(run.args(out, "--budget", "0.05", "--resume")) == 0
    state, history = checkpoint(out)["state"], checkpoint(out)["history"]
    assert state["global_step"] == state["total_steps"] and history[0]["step"] == STEPS_PER_EPOCH
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))


def test_probing_leaves_the_run_unchanged(tiny_data, tmp_path):
    recipe = Recipe.load(make_tiny_run(tmp_path, tiny_data, **FAST, steps=3).recipe)
    source = open_dataset(f"folder:{tiny_data}", seed=recipe.train.seed)
    trainer = SupernetTrainer(recipe, SupernetConfig.load("tiny"), source, tmp_path / "run")
    trainer.setup(resume=False)
    weights = {k: v.clone() for k, v in trainer.step_module.state_dict().items()}
    rng, sampler = rng_state(), trainer.checkpoint_extra()["sampler"]
    step_s, val_s = trainer._probe_seconds()
    assert step_s > 0 and val_s > 0
    after = trainer.step_module.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)  # batch norm statistics too
    assert all(p.grad is None for p in trainer.step_module.parameters())
    assert torch.equal(rng_state()["torch"], rng["torch"]) and rng_state()["python"] == rng["python"]
    assert trainer.checkpoint_extra()["sampler"] == sampler


# ------------------------------------------------------------------------------------- budget arithmetic
def most_steps(budget_s: float, step_s: float, val_s: float, per_epoch: int, val_every: int) -> int:
    """Brute force: the largest step count whose steps and validations fit (at least 1)."""

    def seconds(n: int) -> float:
        epochs = math.ceil(n / per_epoch)
        return n * step_s + math.ceil(epochs / val_every) * val_s

    n = 1
    while seconds(n + 1) <= budget_s:
        n += 1
    return n


def test_steps_within_without_validations_is_budget_over_step_time():
    assert steps_within(10.0, 1.0, 0.0, 5, 1) == 10
    assert steps_within(10.0, 0.3, 0.0, 5, 1) == 33


def test_steps_within_accounts_for_validations():
    # 10 s, 1 s a step, 2.5 s a validation after every 5-step epoch: 5 steps + 1 validation = 7.5 s fit,
    # 6 steps need a second validation (11 s)
    assert steps_within(10.0, 1.0, 2.5, 5, 1) == 5
    assert steps_within(10.0, 1.0, 0.0, 5, 1) > steps_within(10.0, 1.0, 2.5, 5, 1) > steps_within(10.0, 1.0, 6, 5, 1)
    assert steps_within(10.0, 1.0, 2.5, 5, 2) == 7  # validating every other epoch: 7 + 2.5 <= 10


@pytest.mark.parametrize("val_s", [0.0, 0.5, 2.0, 4.0])
@pytest.mark.parametrize(("per_epoch", "val_every"), [(1, 1), (1, 3), (5, 1), (3, 2), (17, 1)])
def test_steps_within_is_the_most_that_fit_and_monotone_in_the_budget(val_s, per_epoch, val_every):
    previous = 0
    for budget in [0.125 * i for i in range(1, 400)]:  # binary fractions: no rounding at the edges
        got = steps_within(budget, 0.25, val_s, per_epoch, val_every)
        assert got == most_steps(budget, 0.25, val_s, per_epoch, val_every), budget
        assert got >= previous, f"{budget} s gives fewer steps than less time"
        previous = got


def test_steps_within_is_never_below_one():
    assert steps_within(0.001, 5.0, 100.0, 5, 1) == 1
    assert steps_within(1.0, 0.1, 1e6, 5, 1) == 1  # even one validation does not fit
    assert steps_within(1e-9, 1e-12, 0.0, 5, 1) >= 1


def test_finished_uses_the_step_budget_or_for_old_checkpoints_the_epochs():
    settings = TrainingSettings(epochs=3)
    assert not finished({"epoch": 2, "global_step": 10}, settings)  # before total_steps existed
    assert finished({"epoch": 3, "global_step": 15}, settings)
    assert finished({"epoch": 3, "global_step": 15, "total_steps": None}, settings)
    budgeted = TrainingSettings(epochs=500, steps=7)
    assert finished({"epoch": 2, "global_step": 7, "total_steps": 7}, budgeted)
    assert not finished({"epoch": 1, "global_step": 6, "total_steps": 7}, budgeted)
    assert not finished({"epoch": 3, "global_step": 6, "total_steps": 7}, settings)  # steps, not epochs


# ------------------------------------------------------------------------------------- settings and recipes
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps: must be at least 1"),
        ({"minutes": -1}, "minutes: must be positive"),
        ({"minutes": 0}, "minutes: must be positive"),
        ({"steps": 5, "minutes": 2.0}, "not both"),
        ({"defect_share": 1.5}, "defect_share"),
        ({"defect_share": -0.1}, "defect_share"),
    ],  # fmt: skip
)
def test_bad_budget_settings_are_refused(changes, message):
    with pytest.raises(AutoNADError, match=message):
        TrainingSettings(epochs=2, **changes)


def test_budgeted():
    assert not TrainingSettings(epochs=2).budgeted
    assert TrainingSettings(epochs=2, steps=3).budgeted and TrainingSettings(epochs=2, minutes=0.5).budgeted
    assert TrainingSettings(epochs=2, defect_share=0.0).defect_share == 0.0  # the bounds are allowed
    assert TrainingSettings(epochs=2, defect_share=1.0).defect_share == 1.0


def test_recipe_with_budget():
    base = Recipe.load("demo")
    assert base.with_budget("train") is base
    steps = base.with_budget("train", steps=7)
    assert (steps.train.steps, steps.train.minutes, steps.name) == (7, None, f"{base.name}+train-s7")
    assert steps.retrain == base.retrain and steps.transform == base.transform
    minutes = base.with_budget("retrain", minutes=1.5)
    assert (minutes.retrain.minutes, minutes.retrain.steps, minutes.name) == (1.5, None, f"{base.name}+retrain-1.5min")
    assert minutes.train == base.train
    assert minutes.with_budget("retrain", steps=4).retrain.minutes is None  # replaces the other kind
    with pytest.raises(AutoNADError, match="at least 1"):
        base.with_budget("train", steps=0)


def test_recipe_with_input():
    base = Recipe.load("demo")
    assert base.with_input() is base
    sized = base.with_input(size=[48, 40])
    assert sized.input_size == (48, 40) and sized.name == f"{base.name}+size48x40"
    assert sized.train == base.train and sized.transform.scale == base.transform.scale
    both = base.with_input((48, 40), 0.5)
    assert both.transform.scale == 0.5 and both.input_size == (48, 40)
    assert both.name == f"{base.name}+size48x40+scale0.5"
    assert base.with_input(scale=2).name == f"{base.name}+scale2"
    for scale in (0, -1, 9):
        with pytest.raises(AutoNADError, match="scale: must be in"):
            base.with_input(scale=scale)


# ------------------------------------------------------------------------------------- positive oversampling
DEFECTIVE = [i % 10 == 0 for i in range(100)]  # 10% defective


def batches(**kwargs) -> list[list[tuple[int, int]]]:
    settings = {"num_items": 100, "batch_size": 8, "seed": 3, "epoch": 2, **kwargs}
    return list(EpochBatches(**settings))


def test_oversampling_puts_the_share_in_every_batch():
    result = batches(defective=DEFECTIVE, defect_share=0.5)
    assert len(result) == 100 // 8  # the epoch length is unchanged
    for batch in result:
        assert len(batch) == 8 and all(key[0] == 2 for key in batch)
        assert sum(DEFECTIVE[i] for _, i, *_ in batch) == 4
    seen = {i for batch in result for _, i, *_ in batch if DEFECTIVE[i]}
    assert seen == {i for i, d in enumerate(DEFECTIVE) if d}  # every defective image is shown
    assert [sum(DEFECTIVE[i] for _, i, *_ in b) for b in batches(defective=DEFECTIVE, defect_share=0.3)] == [2] * 12


def test_a_repeated_item_is_keyed_by_its_repeat_so_it_gets_new_augmentation():
    keys = [key for batch in batches(defective=DEFECTIVE, defect_share=0.5) for key in batch]
    assert len(set(keys)) == len(keys)  # 48 defective draws of 10 images, each draw its own key
    assert {repeat for _, i, repeat in keys if DEFECTIVE[i]} == set(range(5))  # 48 draws: 4-5 per image
    assert all(len(key) == 2 for batch in batches() for key in batch)  # no oversampling: keys as before


def test_oversampling_is_deterministic_and_resumable():
    full = batches(defective=DEFECTIVE, defect_share=0.5)
    assert full == batches(defective=DEFECTIVE, defect_share=0.5)
    assert full != batches(defective=DEFECTIVE, defect_share=0.5, epoch=3)
    assert full != batches(defective=DEFECTIVE, defect_share=0.5, seed=4)
    for start in (1, 5, 11):
        assert batches(defective=DEFECTIVE, defect_share=0.5, start=start) == full[start:]
    # two ranks see the halves of each global batch
    ranks = [batches(defective=DEFECTIVE, defect_share=0.5, rank=r, world=2) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks)] == full


def test_without_a_share_the_order_is_the_plain_one():
    generator = torch.Generator().manual_seed(3 * 1_000_003 + 2)
    order = torch.randperm(100, generator=generator).tolist()
    plain = [[(2, i) for i in order[b * 8 : (b + 1) * 8]] for b in range(12)]
    assert batches() == plain
    assert batches(defective=DEFECTIVE) == plain
    assert batches(defective=DEFECTIVE, defect_share=None) == plain
    assert batches(defective=DEFECTIVE, defect_share=0.5) != plain


def test_oversampling_without_defect_free_or_without_defective_items():
    everything = batches(defective=[True] * 100, defect_share=0.25)
    assert len(everything) == 12 and all(len(b) == 8 for b in everything)
    assert len({i for b in everything for _, i in b}) == 96  # one permutation: no repeats within the epoch
    nothing = batches(defective=[False] * 100, defect_share=0.5)
    assert len(nothing) == 12 and len({i for b in nothing for _, i in b}) == 96
    few = [i < 6 for i in range(100)]  # 6 defective, 94 defect-free: share 0.5 in every batch
    assert all(sum(few[i] for _, i, *_ in b) == 4 for b in batches(defective=few, defect_share=0.5))
    mostly = [i >= 3 for i in range(100)]  # 97% defective: the share is a floor, never undersampled
    assert batches(defective=mostly, defect_share=0.75) == batches()


def test_the_recipe_share_reaches_the_training_batches(tiny_data, tmp_path):
    recipe = Recipe.load(make_tiny_run(tmp_path, tiny_data, **FAST, defect_share=0.5).recipe)
    source = open_dataset(f"folder:{tiny_data}", seed=recipe.train.seed)
    trainer = SupernetTrainer(recipe, SupernetConfig.load("tiny"), source, tmp_path / "run")
    trainer._prepare_data()
    ids = trainer.train_set.ids
    assert 0 < sum(bool(source.present(i)) for i in ids) < len(ids) / 2  # without oversampling: rarely 2 of 4
    loader = trainer._loader()
    assert len(loader) == STEPS_PER_EPOCH
    for batch in loader.batch_sampler:
        assert sum(bool(source.present(ids[i])) for _, i, *_ in batch) == 2


# ------------------------------------------------------------------------------------- CaP on all-defective data
@pytest.fixture(scope="module")
def all_defective(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("all-defective")
    data = write_folder(SyntheticSource(n=32, size=64, seed=1, defect_free=0.0), root / "data")
    source = open_dataset(f"folder:{data}")
    assert all(source.present(i) for i in source.ids)
    return data


def test_cap_loss_is_off_when_every_training_image_is_defective(all_defective, tmp_path, capsys):
    run = make_tiny_run(tmp_path, all_defective, **FAST)
    out = tmp_path / "run"
    assert main(run.args(out, "--steps", "2")) == 0
    assert "CaP presence stage off" in capsys.readouterr().out
    info = yaml.safe_load((out / "run.yaml").read_text())
    assert info["cap_loss"] is False and info["recipe"]["train"]["cap"] is True
    ckpt = checkpoint(out)
    assert ckpt["history"] and all("presence" not in h and "classes" in h and "seg" in h for h in ckpt["history"])
    assert ckpt["state"]["global_step"] == 2
