import random
from collections import Counter

import pytest

from autonad.errors import AutoNADError
from autonad.latency.components import arch_keys
from autonad.latency.predictor import LatencyPredictor, apply_calibration, fit_calibration
from autonad.latency.table import Calibration
from autonad.space import SearchSpace

from .conftest import synthetic_profile


def test_uncalibrated_prediction_is_the_sum_of_entries():
    space = SearchSpace.load("tiny")
    profile = synthetic_profile(space, {"transformer": 3.0})
    pred = LatencyPredictor("d", profile, space, classes=2)
    for seed in range(10):
        arch = space.sample(random.Random(seed))
        keys = arch_keys(space, arch, 2)
        assert pred.predict(arch) == pytest.approx(sum(profile.entries[k] for k in keys))
        assert sum(pred.breakdown(arch).values()) == pytest.approx(pred.predict(arch))


def test_calibration_is_applied():
    space = SearchSpace.load("tiny")
    profile = synthetic_profile(space)
    profile.calibration = Calibration(constant_ms=2.0, scales={"block.conv": 0.5})
    pred = LatencyPredictor("d", profile, space, classes=2)
    arch = space.largest()
    sums = pred.kind_sums(arch)
    expected = 2.0 + sum(v * (0.5 if k == "block.conv" else 1.0) for k, v in sums.items())
    assert pred.predict(arch) == pytest.approx(expected)


def test_fit_recovers_known_scales_and_constant():
    rng = random.Random(0)
    truth = Calibration(constant_ms=3.0, scales={"embed": 1.0, "block.conv": 0.7, "block.mlp": 1.3, "edge": 1.1})
    sums = [Counter({k: rng.uniform(0.5, 5.0) for k in truth.scales}) for _ in range(40)]
    measured = [apply_calibration(truth, s) for s in sums]
    fit = fit_calibration(sums, measured, pull=1e-6)
    assert fit.constant_ms == pytest.approx(3.0, abs=0.02)
    for kind, scale in truth.scales.items():
        assert fit.scales[kind] == pytest.approx(scale, abs=0.01)
    assert fit.mape < 1e-3 and fit.fitted_on == 40


def test_missing_entries_classes_and_space_are_clear_errors():
    space = SearchSpace.load("tiny")
    profile = synthetic_profile(space)
    with pytest.raises(AutoNADError, match=r"head entries for \[2, 3\] classes, not 6"):
        LatencyPredictor("d", profile, space, classes=6)
    with pytest.raises(AutoNADError, match="made for search space 'tiny', not 'autonad'"):
        LatencyPredictor("d", profile, SearchSpace.load("autonad"), classes=2)
    arch = space.decode([0] * len(space.genes))  # every gene at its first choice
    block = arch_keys(space, arch, 2)[1]  # its first block
    del profile.entries[block]
    with pytest.raises(AutoNADError, match=f"has no entry '{block}'"):
        LatencyPredictor("d", profile, space, classes=2).predict(arch)


def test_shipped_estimated_tables_label_their_provenance():
    from autonad.latency.table import load_profile

    device, profile = load_profile("jetson", "autonad", (320, 320))
    pred = LatencyPredictor(device, profile, SearchSpace.load("autonad"), classes=2)
    assert profile.provenance == "estimate" and "calibrated on published or measured timings" in pred.label
    assert pred.predict(SearchSpace.load("autonad").largest()) > pred.predict(SearchSpace.load("autonad").smallest())
