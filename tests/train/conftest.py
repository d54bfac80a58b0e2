"""A tiny training set-up shared by the resume, distributed and CLI tests.

`tiny_run` writes a `folder:` dataset (32 synthetic 64x64 images), a recipe and a supernet YAML
(the tiny supernet with drop path on) into a temporary folder, so `autonad train-supernet` runs
on it in seconds, in this process or in a subprocess (`run_cli`, one torch thread).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from autonad import resources
from autonad.data import SyntheticSource
from autonad.data.folder import write_folder
from autonad.errors import AutoNADError
from autonad.train.checkpoint import load_checkpoint
from autonad.train.trainer import CHECKPOINT_FORMAT

TRAIN = {
    "epochs": 2,
    "batch_size": 4,
    "lr": 2.0e-3,
    "warmup_epochs": 1,
    "sampler": "sandwich",  # largest + smallest + 1 random, in-place distillation
    "sandwich_random": 1,
    "dice_weight": 1.0,
    "cap": True,
    "cap_weighting": "uncertainty",  # learned loss weights: parameters outside the supernet
    "val_every": 1,
    "val_images": None,  # all 6: the defect metrics need the defective ones
    "checkpoint_minutes": 60.0,
    "checkpoint_steps": 1,
    "latency_every": 2,
    "workers": 0,
    "seed": 3,
}
TRANSFORM = {"size": [32, 32], "hflip": True, "vflip": True, "rotate90": True, "resize_crop": [0.6, 1.0],
             "brightness": 0.2, "contrast": 0.2}  # fmt: skip


@dataclass
class TinyRun:
    root: Path
    dataset: str  # folder:<root>
    recipe: Path
    supernet: Path

    def args(self, out: Path, *extra: str, supernet: str | Path | None = None) -> list[str]:
        return ["train-supernet", "--dataset", self.dataset, "--recipe", str(self.recipe),
                "--supernet", str(supernet or self.supernet), "--out", str(out), "--threads", "1", *extra]  # fmt: skip

    def write_recipe(self, name: str = "tiny-test", **train) -> Path:
        path = self.root / f"{name}.yaml"
        recipe = {"name": name, "dataset": "folder", "supernet": "tiny", "normalise": "dataset",
                  "transform": TRANSFORM, "train": {**TRAIN, **train}}  # fmt: skip
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-data")
    return write_folder(SyntheticSource(n=32, size=64, seed=1), root)


def write_supernet(path: Path, name: str, **changes) -> Path:
    """The shipped tiny supernet definition with `changes` (e.g. drop_path=0.1, decoder={"dropout": 0.0})."""
    supernet = yaml.safe_load(resources.resolve("supernets", "tiny").read_text())
    for key, value in changes.items():
        supernet[key] = {**supernet[key], **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump({**supernet, "name": name}, sort_keys=False))
    return path


def make_tiny_run(root: Path, data: Path, supernet: dict | None = None, **train) -> TinyRun:
    """Recipe (TRAIN with `train` changes) and supernet (default: tiny + drop path 0.1) YAMLs in `root`."""
    changes = {"drop_path": 0.1} if supernet is None else supernet  # drop path draws from torch's global RNG
    run = TinyRun(
        root, f"folder:{data}", root / "tiny-test.yaml", write_supernet(root / "tiny-x.yaml", "tiny-x", **changes)
    )
    run.write_recipe(**train)
    return run


@pytest.fixture
def tiny_run(tiny_data, tmp_path) -> TinyRun:
    return make_tiny_run(tmp_path, tiny_data)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200")
    env.pop("WORLD_SIZE", None)
    return env


HELD_CLI = str(Path(__file__).with_name("held_cli.py"))


def held_env(epoch: int, step_in_epoch: int) -> dict[str, str]:
    """Environment for HELD_CLI: the run stops right after saving the checkpoint at that step."""
    return dict(subprocess_env(), AUTONAD_TEST_HOLD=f"{epoch},{step_in_epoch}")


def start_cli(args: list[str], hold: tuple[int, int] | None = None, **kwargs) -> subprocess.Popen:
    """`python -m autonad ARGS` in a subprocess (its output goes to files or pipes given in kwargs);
    with `hold`, the run stops after saving the checkpoint at (epoch, step_in_epoch), to be killed there."""
    if hold is None:
        return subprocess.Popen([sys.executable, "-m", "autonad", *args], env=subprocess_env(), **kwargs)
    return subprocess.Popen([sys.executable, HELD_CLI, *args], env=held_env(*hold), **kwargs)


def torchrun_command(args: list[str], processes: int = 2, held: bool = False) -> list[str]:
    """`torchrun --standalone --nproc_per_node N -m autonad ARGS` with this interpreter (HELD_CLI if `held`)."""
    target = [HELD_CLI] if held else ["-m", "autonad"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            *target, *args]  # fmt: skip


def children(pid: int) -> list[int]:
    """Ids of the processes whose parent is `pid` (torchrun's workers run in sessions of their own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autonad", *args], env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


TIMING_KEYS = {"images_per_s"}  # wall-clock measurements: the only history entries allowed to differ


def checkpoint(run: Path) -> dict:
    return load_checkpoint(run / "checkpoint.pt", CHECKPOINT_FORMAT)


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in history]


def assert_same_training(expected: Path, actual: Path, latency: bool = True) -> None:
    """Two finished runs are bit for bit the same: weights, loss and optimizer state, schedule, sampler,
    RNG, every per-epoch loss and validation, and the latency records (but for their milliseconds)."""
    ref, res = checkpoint(expected), checkpoint(actual)
    assert ref["state"]["global_step"] == res["state"]["global_step"]
    for part in ("model", "loss"):
        assert ref[part].keys() == res[part].keys()
        for name, tensor in ref[part].items():
            assert torch.equal(tensor, res[part][name]), f"{part} {name} differs"
    assert ref["optimizer"]["param_groups"] == res["optimizer"]["param_groups"]
    assert ref["optimizer"]["state"].keys() == res["optimizer"]["state"].keys()
    for index, values in ref["optimizer"]["state"].items():
        for key, tensor in values.items():
            assert torch.equal(tensor, res["optimizer"]["state"][index][key]), f"AdamW {key} of parameter {index}"
    assert ref["scheduler"] == res["scheduler"]
    assert ref["sampler"] == res["sampler"]
    assert torch.equal(ref["rng"]["torch"], res["rng"]["torch"])
    assert ref["rng"]["python"] == res["rng"]["python"]
    assert without_timing(res["history"]) == without_timing(ref["history"])
    assert not latency or [(r["step"], r["arch"]) for r in res["latency_records"]] == [
        (r["step"], r["arch"]) for r in ref["latency_records"]
    ]


def wait_for_step(run: Path, proc: subprocess.Popen, epoch: int, step_in_epoch: int, timeout: float = 120.0) -> dict:
    """Poll the (atomically replaced) checkpoint until it shows `epoch` at `step_in_epoch` or later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the training run ended before it could be killed"
        try:
            state = checkpoint(run)["state"]
        except AutoNADError:  # not written yet
            state = None
        if state and (state["epoch"], state["step_in_epoch"]) >= (epoch, step_in_epoch):
            return state
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint at epoch {epoch} step {step_in_epoch} within {timeout} s")
