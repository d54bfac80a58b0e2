"""Fault injection: `search` and `retrain` killed with SIGKILL at 5 random moments, each time resumed,
end exactly where an uninterrupted run ends, and no file is ever found half-written under its name."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from autonad.data import SyntheticSource
from autonad.data.folder import write_folder
from autonad.space import SearchSpace

RECIPE = {"name": "kill-test", "dataset": "folder", "supernet": "tiny", "normalise": "dataset",
          "transform": {"size": [32, 32]},
          "train": {"epochs": 3, "batch_size": 4, "val_every": 1, "latency_every": 0, "cap": False, "seed": 3,
                    "checkpoint_steps": 2},
          "retrain": {"epochs": 4, "batch_size": 4, "val_every": 1, "cap": False, "seed": 3, "checkpoint_steps": 2},
          "search": {"population": 4, "generations": 3, "parents": 2, "val_images": 4}}  # fmt: skip
KILLS = 5
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kill")
    write_folder(SyntheticSource(n=24, size=40, seed=1), root / "data")
    (root / "recipe.yaml").write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    subprocess.run([sys.executable, "-m", "autonad", "profile", "--hw", "rtx3090", "--roofline", "--search-space",
                    "tiny", "--input-size", "32x32", "--classes", "4", "--out", str(root / "gpu.yaml")],
                   check=True, capture_output=True)  # fmt: skip
    return root


def command(lab: Path, kind: str, out: str) -> list[str]:
    common = ["--dataset", f"folder:{lab / 'data'}", "--recipe", str(lab / "recipe.yaml"), "--out", out,
              "--no-tensorboard"]  # fmt: skip
    if kind == "search":
        return [sys.executable, "-m", "autonad", "search", *common, "--hw", str(lab / "gpu.yaml"), "--workers", "0"]
    arch = lab / "arch.yaml"
    if not arch.exists():
        SearchSpace.load("tiny").sample(random.Random(4)).save(arch)
    return [sys.executable, "-m", "autonad", "retrain", "--arch", str(arch), "--init", "scratch", *common,
            "--format", "torchscript", "onnx"]  # fmt: skip


def run(argv: list[str], cwd: Path, kill_after: float | None = None) -> tuple[int, float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -9, time.monotonic() - start
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    return 0, time.monotonic() - start


def assert_no_half_files(folder: Path) -> None:
    """Every file under its final name is whole: it parses (or loads) as what its name says."""
    for path in folder.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".png":
            Image.open(path).verify()
        elif path.suffix == ".pt":
            torch.load(path, map_location="cpu", weights_only=True)


def onnx_weights(path: Path) -> dict[str, bytes]:
    """The exported network's weights (its metadata names the run's own paths, which differ)."""
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t).tobytes() for t in onnx.load(str(path)).graph.initializer}


def deterministic(folder: Path, kind: str) -> dict:
    """What two runs with the same inputs must share (timings and report timestamps left out)."""
    if kind == "search":
        summary = yaml.safe_load((folder / "summary.yaml").read_text())
        return {
            "best": summary["best"],
            "why": summary["why"],
            "pareto": (folder / "pareto.csv").read_text(),
            "history": (folder / "history.jsonl").read_text(),
            "arch": (folder / "best_arch.yaml").read_text(),
            "weights": onnx_weights(folder / "model.onnx"),
        }
    history = [{k: v for k, v in json.loads(line).items() if k != "images_per_s"}
               for line in (folder / "history.jsonl").read_text().splitlines()]  # fmt: skip
    return {
        "history": history,
        "metrics": (folder / "metrics.json").read_text(),
        "weights": onnx_weights(folder / "model.onnx"),
    }


@pytest.mark.parametrize("kind", ["search", "retrain"])
def test_killed_five_times_then_resumed_equals_an_uninterrupted_run(lab, kind, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir(), killed.mkdir()
    _, duration = run(command(lab, kind, "run"), clean)
    rng = random.Random(f"kill/{kind}")
    argv = command(lab, kind, "run")
    kills = 0
    for attempt in range(KILLS):
        code, _ = run(argv + (["--resume"] if attempt else []), killed, rng.uniform(2.0, max(2.5, 0.9 * duration)))
        kills += code == -9
        assert_no_half_files(killed)
    run([*argv, "--resume"], killed)
    assert kills >= 3  # most of the five landed before the run could finish
    assert deterministic(killed / "run", kind) == deterministic(clean / "run", kind)
    assert_no_half_files(killed)
