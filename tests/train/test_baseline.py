"""The plain U-Net baseline: its shape contract, training through the shared loop, best.pt, resume."""

import pytest
import torch

from autonad.config import from_mapping
from autonad.data import SyntheticSource
from autonad.errors import AutoNADError
from autonad.export.inference import ExportedModel, evaluate_model
from autonad.supernet.complexity import complexity
from autonad.train.baseline import UNET_WIDTHS, UNet, UNetTrainer, load_trained_unet
from autonad.train.recipe import Recipe

WIDTHS = (8, 16, 32)


def recipe(**retrain) -> Recipe:
    settings = {"epochs": 2, "batch_size": 4, "lr": 2e-3, "schedule": "poly", "val_every": 1,
                "checkpoint_minutes": 60.0, "seed": 2, **retrain}  # fmt: skip
    data = {"name": "t", "train": {"epochs": 1}, "retrain": settings, "transform": {"size": [32, 32]}}
    return from_mapping(Recipe, data, "recipe")


def source() -> SyntheticSource:
    return SyntheticSource(n=24, size=48, seed=1)


@pytest.mark.parametrize("size", [(32, 32), (40, 56), (37, 45)])
def test_logits_have_the_input_size_for_any_size(size):
    out = UNet(4, WIDTHS)(torch.randn(2, 3, *size))
    assert set(out) == {"seg"} and out["seg"].shape == (2, 4, *size)


def test_default_widths_are_a_half_width_unet_counted_by_fvcore():
    size = complexity(UNet(2, UNET_WIDTHS), (64, 64))
    assert 7.5e6 < size.params < 8.0e6  # 31 M at full width (64..1024) / ~4
    assert size.flops_fvcore > 0


def test_trains_keeps_its_best_epoch_and_evaluates_like_an_exported_model(tmp_path):
    state = UNetTrainer(recipe(), source(), tmp_path, WIDTHS).fit()
    assert state.epoch == 2 and all("val" in h for h in state.history)
    best = max(state.history, key=lambda h: h["val"]["miou"])
    assert state.best["epoch"] == best["epoch"]
    trained = load_trained_unet(tmp_path / "best.pt")
    assert trained.meta["best"]["epoch"] == best["epoch"] and not trained.net.training
    model = ExportedModel(trained.net, trained.meta, tmp_path / "best.pt")
    report = evaluate_model(model, source(), "val")
    assert report.to_dict()["miou"] == pytest.approx(best["val"]["miou"], abs=1e-6)


def test_resume_continues_and_refuses_other_widths(tmp_path):
    UNetTrainer(recipe(), source(), tmp_path, WIDTHS, max_epochs=1).fit()
    with pytest.raises(AutoNADError, match="trains a U-Net of widths"):
        UNetTrainer(recipe(), source(), tmp_path, (8, 16)).fit(resume=True)
    state = UNetTrainer(recipe(), source(), tmp_path, WIDTHS).fit(resume=True)
    assert state.epoch == 2


def test_a_subnet_file_is_not_a_unet(tmp_path):
    torch.save({"format": "autonad-subnet/1"}, tmp_path / "best.pt")
    with pytest.raises(AutoNADError, match="autonad-subnet/1"):
        load_trained_unet(tmp_path / "best.pt")
