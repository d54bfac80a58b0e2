"""Supernet training on Ray Train: two workers on a `ray start` cluster (head + one worker node, gloo, token
authentication on) train like one process with the same global batch, and a run whose driver is killed
resumes exactly, from its own checkpoint or from the copy Ray Train keeps.

The set-up and tolerances are those of tests/train/test_distributed.py (torchrun), which says why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from autonad.cli import main
from autonad.errors import AutoNADError
from autonad.train.ray_train import RAY_TRAIN_DIR, check_resources, uses_gpus

from .conftest import TinyRun, assert_same_training, checkpoint, make_tiny_run, wait_for_step

pytestmark = pytest.mark.slow
STEPS_PER_EPOCH = 5
EPOCHS = 4  # room to kill the driver mid-run: its workers go on for a moment after it dies
LOSS_KEYS = ("loss", "seg", "presence", "classes", "distill", "lr")


def on_cluster(cluster, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "autonad", *args, "--ray-address", cluster.address, "--workers", "2"]


def run_on_cluster(cluster, args: list[str], home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(on_cluster(cluster, args), env=cluster.env(HOME=str(home)), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tiny_data, ray_cluster, tmp_path_factory) -> tuple[TinyRun, Path, Path, Path]:
    """The same tiny training in one process (this one) and on two Ray Train workers of the cluster."""
    root = tmp_path_factory.mktemp("ray-train")
    run = make_tiny_run(root, tiny_data, supernet={"drop_path": 0.0, "decoder": {"dropout": 0.0}}, dice_weight=0.0,
                        amp=False, epochs=EPOCHS)  # fmt: skip
    one, two = root / "one", root / "two"
    assert main(run.args(one)) == 0
    result = run_on_cluster(ray_cluster, run.args(two), root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run, one, two, root


def test_two_ray_train_workers_give_the_loss_curve_of_one_process(runs):
    run, one, two, _ = runs
    assert yaml.safe_load((two / "run.yaml").read_text())["world_size"] == 2
    ref, ray = checkpoint(one), checkpoint(two)
    assert ray["state"]["global_step"] == ref["state"]["global_step"] == EPOCHS * STEPS_PER_EPOCH
    diffs = {(h["epoch"], k): abs(h[k] - g[k]) for h, g in zip(ref["history"], ray["history"]) for k in LOSS_KEYS}
    assert len(ray["history"]) == EPOCHS and max(diffs.values()) <= 1e-5, diffs
    assert ref["sampler"] == ray["sampler"]  # the same subnet sequence
    kept = list((two / RAY_TRAIN_DIR).glob("checkpoint_*/checkpoint.pt"))  # Ray Train's copy: the last epoch's
    assert len(kept) == 1 and checkpoint(kept[0].parent)["state"]["global_step"] == EPOCHS * STEPS_PER_EPOCH


def kill_driver_mid_run(run: TinyRun, cluster, out: Path, home: Path) -> dict:
    """Start the run, SIGKILL its driver once epoch 2 is under way, wait until its workers have stopped."""
    with (home / f"{out.name}.log").open("w") as log:
        proc = subprocess.Popen(on_cluster(cluster, run.args(out)), env=cluster.env(HOME=str(home)),
                                stdout=log, stderr=log, start_new_session=True)  # fmt: skip
        try:
            wait_for_step(out, proc, epoch=1, step_in_epoch=1, timeout=300)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    last, since = None, time.monotonic()
    while time.monotonic() - since < 5:  # Ray stops a dead driver's actors; the checkpoint then stays put
        stamp = (out / "checkpoint.pt").stat().st_mtime_ns
        last, since = (stamp, since) if stamp == last else (stamp, time.monotonic())
        time.sleep(0.2)
    state = checkpoint(out)["state"]
    assert state["global_step"] < EPOCHS * STEPS_PER_EPOCH, f"the run finished before its driver was killed: {state}"
    return state


def test_a_killed_driver_resumes_exactly_from_its_checkpoint(runs, ray_cluster):
    run, _, two, root = runs
    killed = root / "killed"
    kill_driver_mid_run(run, ray_cluster, killed, root)
    resumed = run_on_cluster(ray_cluster, run.args(killed, "--resume"), root)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert_same_training(two, killed)


def test_without_its_own_checkpoint_a_run_resumes_from_ray_trains_copy(runs, ray_cluster):
    """As when the run folder of the node that held rank 0 is gone: Ray Train's copy (the last finished
    epoch) is restored, and the run still ends exactly as an uninterrupted one."""
    run, _, two, root = runs
    lost = root / "lost"
    state = kill_driver_mid_run(run, ray_cluster, lost, root)
    assert state["epoch"] >= 1 and list((lost / RAY_TRAIN_DIR).glob("checkpoint_*/checkpoint.pt"))
    (lost / "checkpoint.pt").unlink()
    again = run_on_cluster(ray_cluster, run.args(lost), root)
    assert again.returncode == 2 and "pass --resume" in again.stderr.strip().splitlines()[-1]
    resumed = run_on_cluster(ray_cluster, run.args(lost, "--resume"), root)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert_same_training(two, lost)


@pytest.mark.parametrize(("device", "gpus", "workers", "expected"),
                         [("auto", 0, 2, False), ("auto", 1, 2, False), ("auto", 2, 2, True), ("cpu", 4, 2, False),
                          ("cuda", 1, 2, True)])  # fmt: skip
def test_ray_train_workers_take_a_whole_gpu_each_where_there_are_enough(device, gpus, workers, expected):
    assert uses_gpus(device, {"CPU": 8, "GPU": gpus}, workers) is expected


def test_ray_train_workers_the_cluster_cannot_hold_are_one_line():
    with pytest.raises(AutoNADError, match="2 Ray Train workers need 2 GPUs, the Ray cluster has 1"):
        check_resources(2, True, {"CPU": 8, "GPU": 1})  # --device cuda: one GPU per rank
    with pytest.raises(AutoNADError, match="3 Ray Train workers need 6 CPUs, the Ray cluster has 4"):
        check_resources(3, False, {"CPU": 4}, threads=2)
    check_resources(2, False, {"CPU": 2})


def test_a_run_its_workers_refuse_is_one_line(runs, ray_cluster):
    """The workers refuse to resume with a changed recipe (a user problem, not a failure that Ray should retry):
    the driver says why in one line and the run folder is left as it was."""
    run, _, two, root = runs
    recipe = yaml.safe_load(run.recipe.read_text())
    recipe["train"]["lr"] = 1e-3
    changed = root / "changed" / run.recipe.name
    changed.parent.mkdir(exist_ok=True)
    changed.write_text(yaml.safe_dump(recipe, sort_keys=False))
    before = (two / "checkpoint.pt").read_bytes()
    args = [*run.args(two, "--resume"), "--recipe", str(changed)]
    result = run_on_cluster(ray_cluster, args, root)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "trained with recipe 'tiny-test' as it was then; it has changed (train.lr: 0.002 then, 0.001 now)" in last
    assert (two / "checkpoint.pt").read_bytes() == before and not (two / ".ray-train-error").exists()
