"""Kill -9 a training run mid-epoch, `--resume` it: the result equals an uninterrupted run's, bit for bit.

The tiny set-up makes every source of randomness and state matter: sandwich sampling (the sampler's
own generator), dropout and drop path (torch's global generator), seeded augmentation, the CaP head
with learned uncertainty weights (parameters and AdamW state outside the supernet), Dice, a cosine
schedule with warm-up, latency records and validation every epoch, and a checkpoint every step.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from autonad.cli import main
from autonad.train.trainer import SupernetTrainer

from .conftest import TRAIN, TinyRun, assert_same_training, checkpoint, make_tiny_run, start_cli, wait_for_step

STEPS_PER_EPOCH = 5  # 21 train images (70% of 32) // batch 4


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory) -> tuple[TinyRun, Path, Path]:
    """An uninterrupted run, and a copy of its folder as it was after the last step of the first epoch,
    before that epoch's validation and end-of-epoch checkpoint (a kill during validation leaves this)."""
    root = tmp_path_factory.mktemp("resume")
    run = make_tiny_run(root, tiny_data)
    out, snapshot = root / "reference", root / "end-of-epoch"
    save = SupernetTrainer.save

    def save_and_snapshot(trainer: SupernetTrainer) -> None:
        save(trainer)
        if (trainer.state.epoch, trainer.state.step_in_epoch) == (0, STEPS_PER_EPOCH):
            shutil.copytree(out, snapshot)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SupernetTrainer, "save", save_and_snapshot)
        assert main(run.args(out)) == 0
    assert checkpoint(out)["state"]["global_step"] == TRAIN["epochs"] * STEPS_PER_EPOCH
    assert len(checkpoint(out)["history"]) == TRAIN["epochs"]
    return run, out, snapshot


def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    run, expected, _ = reference
    killed = tmp_path / "killed"
    with (tmp_path / "killed.log").open("w") as log:
        proc = start_cli(run.args(killed), hold=(1, 2), stdout=log, stderr=log)
        try:
            wait_for_step(killed, proc, epoch=1, step_in_epoch=2)  # second epoch, after a validation
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    state = checkpoint(killed)["state"]
    assert state["epoch"] == 1 and 0 < state["step_in_epoch"] < STEPS_PER_EPOCH, f"not killed mid-epoch: {state}"

    assert main(run.args(killed, "--resume")) == 0
    assert_same_training(expected, killed)


def test_resume_from_the_last_step_of_an_epoch_before_its_validation(reference):
    run, expected, snapshot = reference
    state = checkpoint(snapshot)["state"]
    assert (state["epoch"], state["step_in_epoch"], len(checkpoint(snapshot)["history"])) == (0, STEPS_PER_EPOCH, 0)
    assert main(run.args(snapshot, "--resume")) == 0
    assert_same_training(expected, snapshot)


def test_checkpoints_and_latency_timing_leave_training_alone(reference, tiny_data, tmp_path):
    """Saving (every step, or whenever `checkpoint_minutes` strikes) and timing subnets change nothing."""
    _, expected, _ = reference
    run = make_tiny_run(tmp_path, tiny_data, checkpoint_steps=0, latency_every=0)
    assert main(run.args(tmp_path / "quiet")) == 0
    assert not checkpoint(tmp_path / "quiet")["latency_records"]
    assert_same_training(expected, tmp_path / "quiet", latency=False)
