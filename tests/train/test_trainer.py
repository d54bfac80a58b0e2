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


def test_a_supernet_records_its_space_and_refuses_an_edited_one(tmp_path, monkeypatch):
    """A space file edited under the same name (a new shipped version) must not be mixed with weights
    trained on the old one: resume and reuse name the change; loading keeps the space it was trained on."""
    import dataclasses

    import torch

    from autonad.space import SearchSpace
    from autonad.train.trainer import finished_supernet, load_trained_supernet

    recipe, config, data = tiny_recipe(epochs=1), SupernetConfig.load("tiny"), source()
    SupernetTrainer(recipe, config, data, tmp_path).fit()
    path = tmp_path / "checkpoint.pt"
    assert load_checkpoint(path, CHECKPOINT_FORMAT)["search_space"]["name"] == "tiny"
    assert finished_supernet(path, recipe, config, list(data.classes))
    tiny = SearchSpace.load("tiny")
    edited = dataclasses.replace(tiny, decoder=dataclasses.replace(tiny.decoder, detail=[0, 8]))
    real_load = SearchSpace.load
    monkeypatch.setattr(SearchSpace, "load", staticmethod(lambda name: edited if name == "tiny" else real_load(name)))
    changed = r"on search space 'tiny' as it was then; it has changed \(decoder\.detail: \[0\] then, \[0, 8\] now\)"
    with pytest.raises(AutoNADError, match=changed + "; move .* away to train a new supernet"):
        finished_supernet(path, recipe, config, list(data.classes))
    with pytest.raises(AutoNADError, match="as it was then; it has changed"):
        SupernetTrainer(recipe, config, data, tmp_path).fit(resume=True)
    trained = load_trained_supernet(path)
    assert trained.net.space == tiny  # the recorded space, not the edited file

    old = dict(load_checkpoint(path, CHECKPOINT_FORMAT))
    del old["search_space"]  # a checkpoint from before spaces were recorded: its weights must fit
    torch.save(old, tmp_path / "old.pt")  # not over `path`: the loaded checkpoint maps that file
    with pytest.raises(AutoNADError, match="its weights do not fit search space 'tiny' as the code defines it now"):
        finished_supernet(tmp_path / "old.pt", recipe, config, list(data.classes))
