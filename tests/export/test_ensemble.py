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
    heads = HeadsArch(cap=True, classes=True)
    members = [net.extract(net.space.smallest(heads=heads)), net.extract(net.space.largest(heads=heads))]
    ensemble = EnsembleNet([m.eval() for m in members], [1.0, 3.0], {}).eval()
    scripted = torch.jit.script(ensemble)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        outs, got, got_ts = [m(x) for m in members], ensemble(x), scripted(x)
    assert ensemble.output_names == ["seg", "cap", "cls"] and set(got) == set(got_ts) == {"seg", "cap", "cls"}
    want = 0.25 * outs[0]["seg"].softmax(1) + 0.75 * outs[1]["seg"].softmax(1)
    assert (got["seg"].softmax(1) - want).abs().max() <= 1e-6
    for name in ("cap", "cls"):  # CaP's presence and class stage: weighted means of the probabilities
        mean = 0.25 * torch.sigmoid(outs[0][name]) + 0.75 * torch.sigmoid(outs[1][name])
        assert (torch.sigmoid(got[name]) - mean).abs().max() <= 1e-6
        assert (got_ts[name] - got[name]).abs().max() <= 1e-5
    no_classes = net.extract(net.space.smallest(heads=HeadsArch(cap=True)))
    assert EnsembleNet([members[0], no_classes], [1.0, 1.0], {}).output_names == ["seg", "cap"]
    plain = [net.extract(net.space.smallest()).eval(), net.extract(net.space.largest()).eval()]
    assert set(torch.jit.script(EnsembleNet(plain, [1.0, 1.0], {}).eval())(x)) == {"seg"}
    with pytest.raises(AutoNADError, match="at least 2 members"):
        EnsembleNet(members[:1], [1.0], {})
    with pytest.raises(AutoNADError, match="weights must be >= 0"):
        EnsembleNet(members, [1.0, -1.0], {})


def test_members_must_be_retrained_alike():
    info = {"classes": ["background", "defect"], "normalisation": {"mean": [0.5], "std": [0.2]}, "input_size": [32, 32]}
    check_members([info, dict(info)], ["a", "b"])
    with pytest.raises(AutoNADError, match="member b has input_size"):
        check_members([info, {**info, "input_size": [64, 64]}], ["a", "b"])


def test_weights_and_pixel_thresholds_are_fitted_alternately(monkeypatch, tmp_path):
    """Paper 004: weights, then thresholds with the weights fixed, then weights under those thresholds,
    until the weights stay; the decision kept is the one calibrated for the final weights."""
    import autonad.export.ensemble as ensemble
    import autonad.export.inference as inference
    from autonad.decision import Decision

    net = Supernet(SupernetConfig.load("tiny"), num_classes=3).eval()
    members = [net.extract(net.space.smallest()).eval(), net.extract(net.space.largest()).eval()]
    meta = {"classes": ["background", "a", "b"], "normalisation": {"mean": [0.5] * 3, "std": [0.2] * 3},
            "input_size": [32, 32], "in_channels": 3}  # fmt: skip
    tuned, calibrated, cpu = [], [], torch.device("cpu")

    def tune(nets, source, transform, pixel_cuts=None):
        tuned.append(pixel_cuts)
        weights = (0.5, 0.5) if pixel_cuts is None else (0.3, 0.7)  # the thresholds move the best weights
        return weights, [{"weights": list(weights), "miou": 0.4}]

    def calibrate(model, source, target, rule, *, curve, per_class):
        calibrated.append(tuple(round(w, 6) for w in model.run.weights.tolist()))
        return Decision(phi="max_prob", pixel_thresholds={"a": 0.3} if per_class else {})

    monkeypatch.setattr(ensemble, "tune_weights", tune)
    monkeypatch.setattr(inference, "calibrate_decision", calibrate)
    fit = ensemble._fit(members, dict(meta), None, None, tmp_path, ("recall>=0.9", "seg", True), cpu)
    assert tuned == [None, [0.3, None], [0.3, None]] and calibrated == [(0.5, 0.5), (0.3, 0.7)]
    assert fit.weights == (0.3, 0.7) and [r["weights"] for r in fit.rounds] == [[0.5, 0.5], [0.3, 0.7]]
    assert fit.net.weights.tolist() == pytest.approx([0.3, 0.7]) and fit.decision.pixel_thresholds == {"a": 0.3}
    tuned.clear()
    one_tau = ensemble._fit(members, dict(meta), None, None, tmp_path, ("recall>=0.9", "seg", False), cpu)
    assert tuned == [None] and len(one_tau.rounds) == 1  # argmax masks: the weights do not hang on the decision
    assert ensemble._fit(members, dict(meta), None, None, tmp_path, (None, "seg", False), cpu).decision is None
