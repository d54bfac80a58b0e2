"""Two `torchrun` processes (gloo on CPU) train like one process with the same global batch.

The set-up is one where the two are the same computation: no dropout or drop path (each rank
would draw its own masks), no Dice (a per-batch ratio: the mean of two half-batch Dice losses is
not the Dice of the whole batch), unweighted CE, and masks without ignore pixels, so every loss
term is a mean over equally sized halves and DDP's gradient average is the full batch's gradient.
What is left is float32 rounding: the gradient all-reduce adds the two halves in another order
than one process does. AdamW turns that into small weight differences: it divides by the root of
the squared-gradient average, so where a gradient is near zero a rounding-level change can move a
weight by up to about one learning rate (2e-3) per step. Measured on this set-up: per-epoch losses
agree in all 6 logged decimals; the weights differ by 1.4e-6 relative (L2 over all of them), by
1.6e-4 at most in one element (a rarely trained 5x5 kernel ring) and by <= 3e-6 elsewhere. The
tolerances (1e-5 on each logged per-epoch mean; 1e-5 relative and one lr step per element on the
weights) leave room for that, while a real fault (a rank training on another split or other
batches, other subnets per rank, unsynchronised gradients) changes the epoch losses by 1e-3 and more.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from autonad.cli import main

from .conftest import (
    TinyRun,
    assert_same_training,
    checkpoint,
    children,
    held_env,
    make_tiny_run,
    subprocess_env,
    torchrun_command,
    wait_for_step,
)

pytestmark = pytest.mark.slow
STEPS_PER_EPOCH = 5
LOSS_KEYS = ("loss", "seg", "presence", "classes", "distill", "lr")


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> tuple[TinyRun, Path, Path]:
    """The same tiny training in one process (in this one) and in two (torchrun)."""
    root = tmp_path_factory.mktemp("ddp")
    # fp32: bf16 autocast rounds a batch of 8 and two halves of 4 differently (1e-4), more than DDP's own error
    run = make_tiny_run(
        root, tiny_data, supernet={"drop_path": 0.0, "decoder": {"dropout": 0.0}}, dice_weight=0.0, amp=False
    )
    one, two = root / "one", root / "two"
    old = torch.get_num_threads()
    assert main(run.args(one)) == 0
    torch.set_num_threads(old)
    result = subprocess.run(
        torchrun_command(run.args(two)), env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run, one, two


def norm(tensors) -> float:
    return sum(float(t.double().square().sum()) for t in tensors) ** 0.5


def test_two_processes_give_the_loss_curve_of_one(runs):
    run, one, two = runs
    assert yaml.safe_load((two / "run.yaml").read_text())["world_size"] == 2
    ref, ddp = checkpoint(one), checkpoint(two)
    assert ddp["state"]["global_step"] == ref["state"]["global_step"] == 2 * STEPS_PER_EPOCH
    assert len(ddp["history"]) == len(ref["history"]) == 2
    diffs = {(h["epoch"], k): abs(h[k] - g[k]) for h, g in zip(ref["history"], ddp["history"]) for k in LOSS_KEYS}
    assert max(diffs.values()) <= 1e-5, diffs
    # rank 0 validates alone, with the global batch: the same subnets, the same weights up to rounding
    assert [h["val"].keys() for h in ddp["history"]] == [h["val"].keys() for h in ref["history"]]
    lr = yaml.safe_load(run.recipe.read_text())["train"]["lr"]
    diff = {k: ref["model"][k] - ddp["model"][k] for k in ref["model"]}
    relative = norm(diff.values()) / norm(ref["model"].values())
    largest = max(d.abs().max().item() for d in diff.values() if d.numel())
    assert relative <= 1e-5 and largest <= lr, (relative, largest)
    assert torch.allclose(ref["loss"]["log_vars"], ddp["loss"]["log_vars"], atol=1e-5)  # learned loss weights
    assert ref["sampler"] == ddp["sampler"]  # the same subnet sequence


def test_kill_9_under_torchrun_then_resume_under_torchrun(runs, tmp_path):
    """Both ranks read the recorded split and rank 0's checkpoint; the result is the uninterrupted run's."""
    run, _, two = runs
    killed = tmp_path / "killed"
    with (tmp_path / "killed.log").open("w") as log:
        # torchrun starts each worker in a session of its own: kill -9 the workers, then torchrun
        proc = subprocess.Popen(
            torchrun_command(run.args(killed), held=True), env=held_env(1, 2), stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_step(killed, proc, epoch=1, step_in_epoch=2)
            workers = children(proc.pid)
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert len(workers) == 2
    state = checkpoint(killed)["state"]
    assert state["epoch"] == 1 and 0 < state["step_in_epoch"] < STEPS_PER_EPOCH, f"not killed mid-epoch: {state}"
    result = subprocess.run(
        torchrun_command(run.args(killed, "--resume")), env=subprocess_env(), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_same_training(two, killed)
