"""Supernet training on a few synthetic images at a small input size (seconds on CPU)."""

import json

import pytest

from autonad.config import from_mapping
from autonad.data import SyntheticSource
from autonad.errors import AutoNADError
from autonad.supernet import SupernetConfig
from autonad.train.checkpoint import load_checkpoint
from autonad.train.recipe import Recipe
from autonad.train.trainer import CHECKPOINT_FORMAT, SupernetTrainer


def tiny_recipe(**train) -> Recipe:
    settings = {"epochs": 2, "batch_size": 4, "val_images": 8, "latency_every": 3, "sampler": "sandwich",
                "sandwich_random": 1, "checkpoint_minutes": 60.0, **train}  # fmt: skip
    return from_mapping(
        Recipe, {"name": "test", "supernet": "tiny", "train": settings, "transform": {"size": [32, 32]}}, "t"
    )


def source() -> SyntheticSource:
    return SyntheticSource(n=40, size=64, seed=1)


def test_trains_validates_and_checkpoints(tmp_path):
    state = SupernetTrainer(tiny_recipe(), SupernetConfig.load("tiny"), source(), tmp_path).fit()
    assert state.epoch == 2 and len(state.history) == 2
    assert set(state.history[-1]["val"]) == {"largest", "smallest", "random"}
    assert all(0.0 <= v["miou"] <= 1.0 for v in state.history[-1]["val"].values())
    assert state.latency_records and all(r["ms"] > 0 for r in state.latency_records)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt", CHECKPOINT_FORMAT)
    assert ckpt["state"]["epoch"] == 2 and ckpt["latency_records"] == state.latency_records
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    for name in ("run.yaml", "split.json"):
        assert (tmp_path / name).is_file()


def test_refuses_to_overwrite_and_checks_compatibility(tmp_path):
    SupernetTrainer(tiny_recipe(epochs=1), SupernetConfig.load("tiny"), source(), tmp_path).fit()
    with pytest.raises(AutoNADError, match="already holds a training run; pass --resume"):
        SupernetTrainer(tiny_recipe(epochs=1), SupernetConfig.load("tiny"), source(), tmp_path).fit()
    other = SupernetConfig.load("autonad")
    with pytest.raises(AutoNADError, match="was trained for supernet 'tiny', which differs from 'autonad'"):
        SupernetTrainer(tiny_recipe(epochs=1), other, source(), tmp_path).fit(resume=True)
