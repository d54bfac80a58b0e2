"""The ensemble module: a weighted mixture of its members' probabilities."""

from __future__ import annotations

import pytest
import torch

from autonad.errors import AutoNADError
from autonad.export.ensemble import EnsembleNet, check_members, weight_grid
from autonad.space import HeadsArch
from autonad.supernet import Supernet, SupernetConfig


def test_the_weight_grid_covers_the_simplex():
    grid = weight_grid(3)
    assert len(grid) == 36 and all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0.1 - 1e-9 for w in grid)
    assert len(weight_grid(2, 0.25)) == 3


def test_an_ensemble_is_the_weighted_mixture_and_normalises_its_weights():
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.load("tiny"), num_classes=3).eval()
    heads = HeadsArch(cap=True)
    members = [net.extract(net.space.smallest(heads=heads)), net.extract(net.space.largest(heads=heads))]
    ensemble = EnsembleNet([m.eval() for m in members], [1.0, 3.0], {}).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        outs, got = [m(x) for m in members], ensemble(x)
    want = 0.25 * outs[0]["seg"].softmax(1) + 0.75 * outs[1]["seg"].softmax(1)
    assert (got["seg"].softmax(1) - want).abs().max() <= 1e-6
    cap = 0.25 * torch.sigmoid(outs[0]["cap"]) + 0.75 * torch.sigmoid(outs[1]["cap"])
    assert (torch.sigmoid(got["cap"]) - cap).abs().max() <= 1e-6
    with pytest.raises(AutoNADError, match="at least 2 members"):
        EnsembleNet(members[:1], [1.0], {})
    with pytest.raises(AutoNADError, match="weights must be >= 0"):
        EnsembleNet(members, [1.0, -1.0], {})


def test_members_must_be_retrained_alike():
    info = {"classes": ["background", "defect"], "normalisation": {"mean": [0.5], "std": [0.2]}, "input_size": [32, 32]}
    check_members([info, dict(info)], ["a", "b"])
    with pytest.raises(AutoNADError, match="member b has input_size"):
        check_members([info, {**info, "input_size": [64, 64]}], ["a", "b"])
