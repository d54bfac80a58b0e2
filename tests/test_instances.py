"""Defects as objects: connected components, QC rules and instance-level recall/precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autonad.errors import AutoNADError
from autonad.instances import InstanceCounts, QCRule, find_instances
from autonad.metrics import SegMetrics

CLASSES = ["background", "scratch", "spot"]


def _mask() -> np.ndarray:
    mask = np.zeros((10, 12), dtype=np.uint8)
    mask[1, 1], mask[2, 2] = 1, 1  # one scratch: diagonal neighbours are 8-connected
    mask[5:8, 6:10] = 1  # a second scratch of 12 px
    mask[0:2, 10:12] = 2  # a spot of 4 px
    return mask


def test_instances_are_8_connected_components_per_class():
    probs = np.zeros((3, 10, 12))
    probs[1][5:8, 6:10] = 0.8
    found = find_instances(_mask(), CLASSES, probs, pixel_size=0.5)
    assert [(i.class_name, i.area, i.bbox) for i in found] == [
        ("scratch", 12, (6, 5, 10, 8)), ("spot", 4, (10, 0, 12, 2)), ("scratch", 2, (1, 1, 3, 3))]  # fmt: skip
    assert found[0].score == pytest.approx(0.8) and found[0].area_mm2 == pytest.approx(3.0)
    assert [i.area for i in find_instances(_mask(), CLASSES, min_area=3)] == [12, 4]


def test_qc_rules_fail_a_part_by_class_and_area():
    rule = QCRule(min_area=3, fail_area={"scratch": 20})
    assert not rule.counts("scratch", 12) and rule.counts("scratch", 21)  # scratches fail only when long
    assert rule.counts("spot", 4) and not rule.counts("spot", 2)  # other classes: at least min_area
    with pytest.raises(AutoNADError, match="'crack', which is not a defect class"):
        QCRule(fail_area={"crack": 1}).check(CLASSES, "--fail-area")


def test_instance_recall_counts_a_gt_defect_found_when_overlapped():
    gt, pred = np.zeros((8, 8), dtype=np.uint8), np.zeros((8, 8), dtype=np.uint8)
    gt[0:2, 0:2], gt[5:7, 5:7], gt[0, 6] = 1, 1, 2  # three GT defects
    pred[1:3, 1:3] = 1  # overlaps the first scratch
    pred[4, 0] = 1  # a false scratch
    pred[0, 6] = 1  # the spot found as a scratch: wrong class, not found
    counts = InstanceCounts.zeros(3)
    assert counts.add(pred, gt, CLASSES, QCRule(), 1.0).tolist() == [True, False]  # per class: scratches fail it
    out = counts.to_dict(CLASSES)
    assert out["recall"] == pytest.approx(1 / 3) and out["precision"] == pytest.approx(1 / 3)
    assert out["per_class"]["scratch"] == {"recall": 0.5, "precision": 1 / 3, "gt": 2, "pred": 3}
    assert out["per_class"]["spot"]["recall"] == 0.0


def test_a_qc_rule_changes_the_segmentation_decision_in_the_metrics():
    target = torch.zeros(2, 10, 12, dtype=torch.long)
    target[0][5:8, 6:10] = 1
    labels = torch.zeros(2, 10, 12, dtype=torch.long)
    labels[0] = torch.from_numpy(_mask().astype(np.int64))
    labels[1][0, 0] = 1  # one stray pixel on the clean sample
    plain = SegMetrics(3, class_names=CLASSES)
    plain.update(labels, target)
    assert plain.compute().sample.counts.fp == 1 and plain.compute().instances is None
    qc = SegMetrics(3, class_names=CLASSES, qc=QCRule(min_area=3))
    qc.update(labels, target, area_scale=[1.0, 1.0])
    report = qc.compute()
    assert report.decided.fp == 0 and report.decided.tp == 1  # the 1 px blob does not fail the part
    assert report.sample.counts.fp == 1  # the paper's Seg_* stay phi >= tau
    assert report.to_dict()["instances"]["recall"] == 1.0
    # the same maps at half the user's resolution: every map pixel is 4 image pixels, so the blob counts
    scaled = SegMetrics(3, class_names=CLASSES, qc=QCRule(min_area=3))
    scaled.update(labels, target, area_scale=[4.0, 4.0])
    assert scaled.compute().decided.fp == 1


def test_under_per_class_taus_each_class_is_gated_by_its_own_qc():
    """A scratch over its tau whose blobs are all under the QC area, and a large spot under its tau:
    neither class fails the part on its own (one tau over the part's phi would fail it)."""
    from autonad.decision import Decision

    rule = QCRule(min_area=5)
    fails = rule.class_fails([("scratch", 3.0), ("spot", 40.0)], CLASSES)
    assert fails.tolist() == [False, True]
    phi_class = np.array([[0.9, 0.2]])
    per_class = Decision(phi="max_prob", class_tau={"scratch": 0.5, "spot": 0.5}, min_area=5)
    one_tau = Decision(phi="max_prob", tau=0.5, min_area=5)
    assert not per_class.decide(np.array([0.9]), None, fails[None], phi_class, CLASSES)[0]
    assert one_tau.decide(np.array([0.9]), None, fails[None], phi_class, CLASSES)[0]
    big_scratch = rule.class_fails([("scratch", 9.0)], CLASSES)[None]
    assert per_class.decide(np.array([0.9]), None, big_scratch, phi_class, CLASSES)[0]
