"""Retraining one subnet: where its weights start, and the recipe parts a resume must match."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from autonad.config import from_mapping
from autonad.errors import AutoNADError
from autonad.space import HeadsArch
from autonad.supernet import Supernet, SupernetConfig
from autonad.train.loop import training_part
from autonad.train.recipe import Recipe
from autonad.train.subnet import initial_subnet
from autonad.train.trainer import TrainedSupernet

CLASSES = ["background", "scratch", "spot", "crack"]


@pytest.fixture(scope="module")
def trained() -> TrainedSupernet:
    """A supernet with non-default weights everywhere (as if trained)."""
    torch.manual_seed(1)
    config = SupernetConfig.load("tiny")
    net = Supernet(config, len(CLASSES))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    recipe = from_mapping(Recipe, {"name": "t", "train": {"epochs": 1}}, "recipe")
    norm = {"mean": [0.5] * 3, "std": [0.25] * 3}
    return TrainedSupernet(net.eval(), config, recipe, CLASSES, norm, 10)


def arch_of(net: Supernet):
    return net.space.sample(random.Random(4), heads=HeadsArch(cap=True))


def test_same_classes_inherit_every_weight(trained):
    arch = arch_of(trained.net)
    torch.manual_seed(0)
    model, new_heads = initial_subnet(arch, trained.config, CLASSES, trained)
    assert new_heads == []
    want = trained.net.extract(arch).state_dict()
    got = model.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_other_classes_get_new_heads_and_keep_the_rest(trained):
    arch = arch_of(trained.net)
    classes = ["background", "defect"]
    model, new_heads = initial_subnet(arch, trained.config, classes, trained)
    assert {k.rsplit(".", 1)[0] for k in new_heads} == {"seg_head.classifier", "cap_head.fc2"}  # tiny is multilabel
    assert model.seg_head.classifier.out_channels == 2
    x = torch.randn(2, 3, 32, 32)
    assert model.eval()(x)["seg"].shape == (2, 2, 32, 32)
    old = trained.net.extract(arch).state_dict()
    kept = [k for k in old if not k.startswith(("seg_head.classifier.", "cap_head.fc2."))]
    assert kept and all(torch.equal(old[k], model.state_dict()[k]) for k in kept)


def test_same_number_of_classes_with_other_names_still_gets_new_heads(trained):
    model, new_heads = initial_subnet(arch_of(trained.net), trained.config, ["bg", "a", "b", "c"], trained)
    assert "seg_head.classifier.weight" in new_heads


def test_scratch_is_the_fresh_supernets_slice(trained):
    arch = arch_of(trained.net)
    torch.manual_seed(7)
    model, new_heads = initial_subnet(arch, trained.config, CLASSES, None)
    torch.manual_seed(7)
    fresh = Supernet(trained.config, len(CLASSES)).extract(arch).state_dict()
    assert new_heads == [] and all(torch.equal(fresh[k], v) for k, v in model.state_dict().items())


def test_an_arch_of_another_space_is_one_line(trained):
    other = Supernet(SupernetConfig.load("autonad"), 4).space.smallest()
    with pytest.raises(AutoNADError, match="arch"):
        initial_subnet(other, trained.config, CLASSES, trained)


def test_training_part_of_a_retrain_ignores_the_calibration_target_and_fills_defaults():
    base = {"name": "r", "train": {"epochs": 3}, "retrain": {"epochs": 2}}
    full = from_mapping(Recipe, base, "recipe")
    calibrated = dataclasses.replace(full, retrain=dataclasses.replace(full.retrain, calibrate="recall>=0.9"))
    assert training_part(base, "retrain") == training_part(calibrated.to_dict(), "retrain")
    longer = dataclasses.replace(full, retrain=dataclasses.replace(full.retrain, epochs=5))
    assert training_part(base, "retrain") != training_part(longer.to_dict(), "retrain")
    # the supernet's part ignores the retrain section and the search budget
    assert training_part(base, "train") == training_part(longer.to_dict(), "train")
    older = {"name": "r", "train": {"epochs": 3}}  # saved before `retrain` existed
    assert training_part(older, "train") == training_part(base, "train")


def test_a_run_from_supernet_weights_keeps_them_unless_an_epoch_beats_them(trained, tmp_path, monkeypatch):
    """best.pt starts as the inherited weights (epoch 0): a fine-tuning whose epochs all validate worse
    exports what it started from, one that improves exports its best epoch."""
    from autonad.data import SyntheticSource
    from autonad.train.subnet import SubnetTrainer, load_trained_subnet

    arch = arch_of(trained.net)
    recipe = from_mapping(Recipe, {"name": "t", "train": {"epochs": 1}, "transform": {"size": [32, 32]},
                                   "retrain": {"epochs": 2, "batch_size": 4, "lr": 1e-2}}, "recipe")  # fmt: skip
    scores = iter([0.9, 0.2, 0.3])  # the inherited weights, then epochs 1 and 2
    monkeypatch.setattr(SubnetTrainer, "validate", lambda self: {"miou": next(scores)})
    source = SyntheticSource(n=16, size=32, seed=2)
    SubnetTrainer(recipe, trained.config, arch, source, tmp_path / "worse", trained).fit()
    kept = load_trained_subnet(tmp_path / "worse" / "best.pt")
    assert kept.best["epoch"] == 0 and kept.best["value"] == 0.9
    want = trained.net.extract(arch).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in kept.net.state_dict().items())
    scores = iter([0.1, 0.2, 0.3])
    SubnetTrainer(recipe, trained.config, arch, source, tmp_path / "better", trained).fit()
    assert load_trained_subnet(tmp_path / "better" / "best.pt").best["epoch"] == 2
