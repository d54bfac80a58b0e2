"""Decision rules and their calibration (papers 000/004)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autonad.decision import Decision, calibrate, calibration_curve
from autonad.errors import AutoNADError
from autonad.metrics import SampleScores


def test_rules_combine_the_segmentation_and_cap_decisions():
    phi, cap = np.array([0.9, 0.9, 0.1, 0.1]), np.array([0.8, 0.2, 0.8, 0.2])
    got = {rule: Decision(rule, "max_prob", 0.5, 0.5).decide(phi, cap).tolist()
           for rule in ("seg", "cap", "gated", "agree", "any")}  # fmt: skip
    assert got == {"seg": [True, True, False, False], "cap": [True, False, True, False],
                   "gated": [True, False, False, False], "agree": [True, False, False, False],
                   "any": [True, True, True, False]}  # fmt: skip
    assert not Decision("gated", cap_threshold=0.5).keeps_mask(0.2) and Decision("agree").keeps_mask(0.2)


def test_stored_decisions_round_trip_and_old_ones_are_segmentation_only():
    d = Decision("gated", "max_prob", 0.3, 0.4, "recall>=0.95", "mt val")
    assert Decision.from_dict(d.to_dict()) == d
    old = Decision.from_dict({"phi": "max_prob", "tau": 0.42, "target": "f1", "calibrated_on": "x val"})
    assert old.rule == "seg" and old.tau == 0.42 and "cap_threshold" not in old.to_dict()
    assert Decision.from_dict({}) == Decision()
    with pytest.raises(AutoNADError, match="unknown key 'tua'"):
        Decision.from_dict({"tua": 1})
    with pytest.raises(AutoNADError, match="unknown decision rule 'vote'"):
        Decision("vote")
    with pytest.raises(AutoNADError, match="needs a CaP presence output"):
        Decision("agree").check(False, "model.ts")


def _hand_built(n: int = 200, seed: int = 0) -> SampleScores:
    """Half defective. Segmentation and CaP each put 2% of the defects low and 30% of the clean samples
    high, on different samples: either alone must accept many false alarms to reach 95% recall, both
    together accept few."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) < n // 2
    phi = np.where(label, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n))
    cap = np.where(label, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n))
    clean = np.flatnonzero(~label)
    phi[clean[:30]] = rng.uniform(0.7, 1.0, 30)  # false alarms of the segmentation
    cap[clean[30:60]] = rng.uniform(0.7, 1.0, 30)  # other false alarms of CaP
    phi[:2] = 0.05  # defects the segmentation misses (CaP sees them)
    cap[2:4] = 0.05  # defects CaP misses
    return SampleScores(phi, label, cap)


def _rates(decision: Decision, scores: SampleScores) -> tuple[float, float]:
    yes = decision.decide(scores.phi, scores.cap_prob)
    tp = (yes & scores.label).sum()
    return tp / scores.label.sum(), tp / max(yes.sum(), 1)


@pytest.mark.parametrize("rule", ["seg", "cap", "gated", "agree", "any"])
def test_calibration_meets_its_recall_target_on_validation(rule):
    scores = _hand_built()
    decision = calibrate(scores, rule, "max_prob", "recall>=0.95", "hand val")
    recall, _ = _rates(decision, scores)
    assert recall >= 0.95 and decision.target == "recall>=0.95" and decision.calibrated_on == "hand val"


def test_combining_segmentation_and_cap_buys_precision_at_the_same_recall():
    scores = _hand_built()
    precision = {rule: _rates(calibrate(scores, rule, "max_prob", "recall>=0.95"), scores)[1]
                 for rule in ("seg", "cap", "agree")}  # fmt: skip
    assert max(precision["seg"], precision["cap"]) < 0.8 and precision["agree"] == 1.0
    both = calibrate(scores, "agree", "max_prob", "f1")
    assert _rates(both, scores)[1] > 0.9


def test_a_cap_rule_needs_cap_scores():
    scores = SampleScores(np.array([0.1, 0.9]), np.array([False, True]), None)
    with pytest.raises(AutoNADError, match="needs a CaP presence output"):
        calibrate(scores, "gated", "max_prob", "f1")
    assert calibrate(scores, "seg", "max_prob", "f1").tau == 0.9


def test_the_calibration_curve_is_drawn(tmp_path):
    scores = _hand_built()
    decision = calibrate(scores, "gated", "max_prob", "recall>=0.95")
    path = calibration_curve(scores, decision, tmp_path / "calibration.png")
    with Image.open(path) as image:
        assert image.size[0] > image.size[1] > 200  # two panels side by side: tau and the CaP threshold
