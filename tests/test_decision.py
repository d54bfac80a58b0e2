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


def _two_classes(n: int = 300, seed: int = 0) -> SampleScores:
    """A common class scored high and a tail class scored low by the segmentation (its probabilities
    never reach the common class's), over clean samples scored in between for the tail's score: one tau
    for both classes must drop to the tail's level and calls the clean samples defective."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, n, p=[0.5, 0.4, 0.1])  # clean, common, tail
    common = np.where(kind == 1, rng.uniform(0.7, 1.0, n), rng.uniform(0.0, 0.3, n))
    tail = np.where(kind == 2, rng.uniform(0.2, 0.35, n), rng.uniform(0.0, 0.15, n))
    phi_class = np.stack([common, tail], 1)
    class_label = np.stack([kind == 1, kind == 2], 1)
    class_prob = np.stack([np.where(kind == 1, 0.9, 0.3), np.where(kind == 2, 0.3, 0.1)], 1)  # tail under 0.5
    return SampleScores(phi_class.max(1), kind > 0, None, phi_class, class_label, class_prob, ("common", "tail"))


def test_per_class_calibration_holds_each_class_to_the_target_and_buys_precision():
    scores = _two_classes()
    one = calibrate(scores, "seg", "max_prob", "recall>=0.95")
    each = calibrate(scores, "seg", "max_prob", "recall>=0.95", per_class=True)
    assert set(each.class_tau) == {"common", "tail"} and each.class_tau["tail"] < each.class_tau["common"]
    for c in range(2):  # every class reaches the target on its own samples
        found = scores.phi_class[:, c] >= each.class_tau[scores.classes[c]]
        assert found[scores.class_label[:, c]].mean() >= 0.95
    r_one, p_one = _rates(one, scores)
    yes = each.decide_scores(scores)
    r_each, p_each = (yes & scores.label).sum() / scores.label.sum(), (yes & scores.label).sum() / yes.sum()
    assert r_each >= 0.95 and r_one >= 0.95 and p_each > p_one + 0.1
    assert each.class_thresholds["tail"] == pytest.approx(0.3)  # the class stage's tail class, under 0.5
    assert Decision.from_dict(each.to_dict()) == each and "tail" in each.describe()


def test_per_class_tables_name_the_models_defect_classes():
    classes = ["background", "common", "tail"]
    Decision(class_tau={"common": 0.5, "tail": 0.2}).check_classes(classes, "m")
    with pytest.raises(AutoNADError, match="class_tau lacks defect class 'tail'"):
        Decision(class_tau={"common": 0.5}).check_classes(classes, "m")
    with pytest.raises(AutoNADError, match="pixel_thresholds names 'scratch'"):
        Decision(pixel_thresholds={"scratch": 0.5}).check_classes(classes, "m")
    with pytest.raises(AutoNADError, match="class_thresholds: expected a mapping"):
        Decision.from_dict({"class_thresholds": [0.5]})
    with pytest.raises(AutoNADError, match="class_tau of tail: expected a finite number >= 0"):
        Decision(class_tau={"common": 0.5, "tail": -1})
    assert Decision(pixel_thresholds={"tail": 0.2}).pixel_cuts(classes) == [None, 0.2]


def test_a_per_class_curve_has_a_panel_per_class(tmp_path):
    scores = _two_classes()
    decision = calibrate(scores, "seg", "max_prob", "recall>=0.95", per_class=True)
    with Image.open(calibration_curve(scores, decision, tmp_path / "calibration.png")) as image:
        assert image.size[0] > image.size[1] > 200


def test_the_cap_rule_calibrates_where_the_segmentation_cannot_reach_the_target():
    label = np.array([True, False] * 10)
    scores = SampleScores(np.full(20, 0.5), label, np.where(label, 0.9, 0.1))  # phi tells nothing
    assert calibrate(scores, "cap", "max_prob", "precision>=0.9").cap_threshold == pytest.approx(0.9)


def test_per_class_taus_that_miss_the_part_level_target_give_way_to_one_tau():
    """Each class reaches 96% recall on its own samples while the parts do not: parts with both classes
    (all found) count for both classes, each missed part for one."""
    class_label = np.zeros((70, 2), bool)
    class_label[0:10, 0], class_label[10:20, 1], class_label[20:60, :] = True, True, True  # 60..69 clean
    phi_class = np.where(class_label, 0.9, 0.0)
    phi_class[[0, 1, 10, 11]] = 0.05  # two single-class parts of each class missed by their class's score
    label = class_label.any(1)
    scores = SampleScores(phi_class.max(1), label, None, phi_class, class_label, None, ("a", "b"))
    for c in range(2):
        assert (phi_class[:, c] >= 0.9)[class_label[:, c]].mean() >= 0.96  # each class alone meets the target
    decision = calibrate(scores, "seg", "max_prob", "recall>=0.96", per_class=True)
    assert not decision.class_tau and _rates(decision, scores)[0] >= 0.96


@pytest.mark.parametrize(
    "fields, where",
    [({"pixel_thresholds": {"tail": 1.5}}, "pixel_thresholds of tail"), ({"cap_threshold": 2.0}, "cap_threshold"),
     ({"class_thresholds": {"tail": 1.01}}, "class_thresholds of tail"), ({"phi": "max_prob", "tau": 1.2}, "tau"),
     ({"phi": "max_prob", "class_tau": {"tail": 3}}, "class_tau of tail"), ({"tau": True}, "tau")],
)  # fmt: skip
def test_a_probability_threshold_above_one_is_refused(fields, where):
    """A mask or class threshold above 1 would silently never fire; pixel counts (phi=pixels) may exceed it."""
    with pytest.raises(AutoNADError, match=f"decision {where}: expected"):
        Decision(**fields)
    assert Decision(phi="pixels", tau=40, class_tau={"tail": 12}).tau == 40


def test_a_class_validation_lacks_takes_the_lowest_calibrated_class_tau():
    """phi_c sits under phi (max p_c <= max(1 - p_bg)): the overall tau would hold the unseen class to
    another scale. It takes the most lenient tau fitted on phi_c (misses cost more than false alarms)."""
    scores = _two_classes()
    unseen = np.zeros((scores.label.size, 1), bool)
    three = SampleScores(scores.phi, scores.label, None, np.hstack([scores.phi_class, unseen * 0.0]),
                         np.hstack([scores.class_label, unseen]), None, ("common", "tail", "rare"))  # fmt: skip
    decision = calibrate(three, "seg", "max_prob", "recall>=0.95", per_class=True)
    assert decision.class_tau["rare"] == min(decision.class_tau["common"], decision.class_tau["tail"])
    assert decision.class_tau["rare"] < decision.tau


@pytest.mark.parametrize("rule", ["any", "gated"])
def test_calibrated_probability_thresholds_stay_within_one(rule):
    """Scores of exactly 1 (saturated probabilities) included: under "any" a score that should never
    fire on its own makes the decision the other score's rule, never a threshold above 1."""
    scores = _hand_built()
    scores.phi[5] = 1.0
    scores = SampleScores(scores.phi, scores.label, np.where(scores.label, 1.0, 0.0))
    decision = calibrate(scores, rule, "max_prob", "precision>=0.99")
    assert 0 <= decision.tau <= 1 and 0 <= decision.cap_threshold <= 1
    assert _rates(decision, scores)[1] >= 0.99 and decision.rule == ("cap" if rule == "any" else "gated")


def test_under_any_a_never_firing_score_leaves_the_other_rule():
    """The segmentation flags a clean part at exactly 1.0; CaP alone is exact: the fit is CaP's rule."""
    label = np.array([True, False, False, True])
    scores = SampleScores(np.array([0.3, 1.0, 0.2, 0.4]), label, np.array([0.9, 0.1, 0.1, 0.9]))
    decision = calibrate(scores, "any", "max_prob", "precision>=0.9")
    assert decision.rule == "cap" and _rates(decision, scores) == (1.0, 1.0)


def test_a_max_prob_tau_rounded_just_above_one_is_a_probability():
    assert Decision(phi="max_prob", tau=1.0000001).tau == pytest.approx(1.0)
    with pytest.raises(AutoNADError, match="within 0..1"):
        Decision(phi="max_prob", tau=1.01)


def test_an_older_never_threshold_above_one_loads_as_the_other_rule():
    old = {"rule": "any", "phi": "max_prob", "tau": 0.4, "cap_threshold": 1.93}  # max score + 1, as stored before
    assert Decision.from_dict(old) == Decision("seg", "max_prob", 0.4, 0.5)
    assert Decision.from_dict({"rule": "any", "phi": "max_prob", "tau": 1.8, "cap_threshold": 0.7}).rule == "cap"
    with pytest.raises(AutoNADError, match="cap_threshold: expected within 0..1"):
        Decision.from_dict({"rule": "gated", "cap_threshold": 1.5})  # never a valid threshold under an "and" rule
