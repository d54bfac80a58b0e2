"""autonad.metrics against hand-computed cases (arithmetic in the comments)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from autonad.errors import AutoNADError
from autonad.metrics import CalibrationTarget, SegMetrics, calibrate_tau, parse_target

IGN = 255


def logits_of(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confident logits [B,C,H,W] whose argmax is `labels`."""
    return torch.nn.functional.one_hot(labels, num_classes).permute(0, 3, 1, 2).float() * 10


def logits_from_probs(probs: list) -> torch.Tensor:
    """probs[b][h][w] = per-class probabilities -> logits [B,C,H,W] (log p; softmax(log p) = p)."""
    return torch.tensor(probs, dtype=torch.float64).log().permute(0, 3, 1, 2).float()


def close(a: object, b: object) -> None:
    """Nested dicts/lists equal, floats to 1e-12."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            close(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y)
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-12)
    else:
        assert a == b


# ----------------------------------------------------------------------------- pixel level

# One 2x4 sample, classes bg(0), 1, 2; the 255 pixel (predicted 2) must count nowhere.
PIX_TARGET = torch.tensor([[[0, 0, 1, 1], [0, 2, 2, IGN]]])
PIX_PRED = torch.tensor([[[0, 1, 1, 0], [0, 2, 0, 2]]])
# (gt, pred) pairs: (0,0) (0,1) (1,1) (1,0) (0,0) (2,2) (2,0)  ->  confusion (rows GT):
PIX_CM = [[2, 1, 0], [1, 1, 0], [1, 0, 1]]
# class 0: TP 2, FP 2 (col 4 - 2), FN 1 (row 3 - 2) -> IoU 2/5, F1 4/7
# class 1: TP 1, FP 1, FN 1 -> IoU 1/3, F1 2/4
# class 2: TP 1, FP 0, FN 1 -> IoU 1/2, F1 2/3
IOU = [2 / 5, 1 / 3, 1 / 2]
F1 = [4 / 7, 1 / 2, 2 / 3]


@pytest.mark.parametrize("as_logits", [False, True])
def test_pixel_metrics_hand_computed(as_logits: bool) -> None:
    m = SegMetrics(3)
    m.update(logits_of(PIX_PRED, 3) if as_logits else PIX_PRED, PIX_TARGET)
    r = m.compute()
    assert [list(row) for row in r.confusion] == PIX_CM
    assert r.num_pixels == 7  # the ignored pixel is not counted
    assert list(r.per_class_iou.values()) == pytest.approx(IOU)
    assert list(r.per_class_f1.values()) == pytest.approx(F1)
    assert r.miou == pytest.approx(sum(IOU) / 3)
    assert r.miou_fg == pytest.approx((1 / 3 + 1 / 2) / 2)  # 5/12
    assert r.mf1 == pytest.approx(sum(F1) / 3)
    assert r.mf1_fg == pytest.approx((1 / 2 + 2 / 3) / 2)  # 7/12
    # pooled defect: TP = cm[1:,1:] = 1+0+0+1 = 2, FP = cm[0,1:] = 1, FN = cm[1:,0] = 2 -> 2/5
    assert r.pooled_iou == pytest.approx(2 / 5)


def test_pooled_iou_merges_defect_classes() -> None:
    # GT [0, 1, 2, 2], prediction [0, 2, 1, 0]: every defect class is wrong (IoU 0), but as one merged
    # "defect" class: TP 2 (pixels 1, 2), FP 0, FN 1 (pixel 3) -> 2/3; one defect sample, IoU 2/3.
    m = SegMetrics(3)
    m.update(torch.tensor([[[0, 2, 1, 0]]]), torch.tensor([[[0, 1, 2, 2]]]))
    r = m.compute()
    assert r.miou_fg == 0.0
    assert r.pooled_iou == pytest.approx(2 / 3) and r.sample_miou == pytest.approx(2 / 3)


def test_absent_class_excluded_never_nan() -> None:
    # Same data with 5 classes: class 3 absent everywhere; class 4 only predicted once (FP).
    pred = PIX_PRED.clone()
    pred[0, 0, 0] = 4  # was a correct background pixel
    m = SegMetrics(5, class_names=["bg", "a", "b", "c", "d"])
    m.update(pred, PIX_TARGET)
    r = m.compute()
    # class 0 now: TP 1, FP 2, FN 2 -> 1/5; class 4: TP 0, FP 1, FN 0 -> 0 (present, counts)
    assert r.per_class_iou == pytest.approx({"bg": 1 / 5, "a": 1 / 3, "b": 1 / 2, "c": None, "d": 0.0})
    assert r.per_class_iou["c"] is None and r.per_class_f1["c"] is None
    assert r.miou == pytest.approx((1 / 5 + 1 / 3 + 1 / 2 + 0) / 4)
    assert r.miou_fg == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert r.mf1_fg == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    json.dumps(r.to_dict(), allow_nan=False)  # raises on NaN


def test_empty_accumulator_reports_none_not_nan() -> None:
    r = SegMetrics(2).compute()
    assert r.miou is None and r.mf1 is None and r.pooled_iou is None
    assert r.sample_miou is None and r.seg_recall is None and r.num_samples == 0
    json.dumps(r.to_dict(), allow_nan=False)


def test_ignore_index_counts_nowhere() -> None:
    # Sample 0: the right column is ignored, and predicted defect there; sample 1: all ignored.
    target = torch.tensor([[[0, IGN], [1, IGN]], [[IGN, IGN], [IGN, IGN]]])
    pred = torch.tensor([[[0, 1], [1, 1]], [[1, 1], [1, 1]]])
    m = SegMetrics(2)
    m.update(pred, target)
    r = m.compute()
    assert [list(row) for row in r.confusion] == [[1, 0], [0, 1]]
    assert r.miou == 1.0 and r.pooled_iou == 1.0
    assert r.num_samples == 1  # an all-ignored sample is not a sample
    assert m.sample_scores().phi.tolist() == [1.0]  # ignored predicted pixels are not in phi
    assert r.sample_miou == 1.0 and r.sample.counts.fp == 0


def test_ignore_index_also_ignored_by_max_prob_phi() -> None:
    # 1x2 image: pixel 0 defect prob 0.1 (valid), pixel 1 defect prob 0.99 but ignored.
    logits = logits_from_probs([[[[0.9, 0.1], [0.01, 0.99]]]])
    m = SegMetrics(2, phi="max_prob")
    m.update(logits, torch.tensor([[[0, IGN]]]))
    assert m.sample_scores().phi[0] == pytest.approx(0.1, abs=1e-6)


def test_target_out_of_range_is_a_user_error() -> None:
    m = SegMetrics(3)
    with pytest.raises(AutoNADError, match=r"\[3\].*0\.\.2"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 3], [1, 2]]]))
    m = SegMetrics(3, ignore_index=None)
    with pytest.raises(AutoNADError, match="255"):
        m.update(torch.zeros(1, 1, 2, dtype=torch.long), torch.tensor([[[0, IGN]]]))


def test_bad_arguments() -> None:
    with pytest.raises(AutoNADError, match="phi"):
        SegMetrics(2, phi="area")
    with pytest.raises(AutoNADError, match="tau"):
        SegMetrics(2, tau=-1)
    with pytest.raises(ValueError):
        SegMetrics(1)
    with pytest.raises(ValueError):
        SegMetrics(3, ignore_index=2)
    m = SegMetrics(2, phi="max_prob")
    with pytest.raises(ValueError, match="logits"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        SegMetrics(2).update(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


# ----------------------------------------------------------------------------- sample level


def paper_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Paper 000 section 3.1 / Fig. 1: a large defect found, a small one missed, two clean images.

    Four 10x10 binary samples:
    A: GT rows 0-3 (40 px); prediction rows 0-3 plus pixel (4,0) -> TP 40, FP 1, FN 0.
    B: GT one pixel (9,9); prediction empty -> TP 0, FP 0, FN 1 (the missed small defect).
    C, D: clean GT, clean prediction.
    """
    target = torch.zeros(4, 10, 10, dtype=torch.long)
    pred = torch.zeros(4, 10, 10, dtype=torch.long)
    target[0, :4] = 1
    pred[0, :4] = 1
    pred[0, 4, 0] = 1
    target[1, 9, 9] = 1
    return pred, target


def test_paper_section_3_1_small_defect_miss() -> None:
    pred, target = paper_case()
    m = SegMetrics(2)
    m.update(logits_of(pred, 2), target)
    r = m.compute()
    # Pixels: defect TP 40, FP 1, FN 1 -> IoU 40/42; background TP 400-42 = 358, FP 1, FN 1 -> 358/360.
    assert r.per_class_iou["class1"] == pytest.approx(40 / 42)
    assert r.per_class_iou["background"] == pytest.approx(358 / 360)
    assert r.miou == pytest.approx((358 / 360 + 40 / 42) / 2)  # 0.9734: the miss is invisible
    assert r.miou > 0.95 and r.pooled_iou == pytest.approx(40 / 42)
    # Samples: relevant A (TP 40 / union 41 -> 40/41) and B (0/1 = 0); C, D are pure negatives.
    assert r.sample.m_eff == 2 and r.sample.empty_samples == 2
    assert r.sample_miou == pytest.approx((40 / 41 + 0) / 2)  # 0.4878
    # Decisions (pixels, tau 1): A phi 41 -> TP; B phi 0 -> FN; C, D phi 0 -> TN.
    c = r.sample.counts
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 0, 1, 2)
    assert r.seg_recall == 0.5 and r.seg_accuracy == 0.75 and r.seg_precision == 1.0
    assert r.sample.seg_f1 == pytest.approx(2 / 3)  # 2*1 / (2*1 + 0 + 1)
    d = r.to_dict()
    assert d["sample_miou"] == r.sample_miou and d["seg_recall"] == 0.5 and d["miou"] == r.miou
    assert d["sample_counts"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 2, "m_eff": 2, "empty": 2}


def test_sample_miou_does_not_zero_masks_below_tau() -> None:
    # Paper eq. 1/4 use the predicted mask itself: with tau = 50 pixels sample A (41 px) is called
    # defect-free, yet its IoU still counts; only the decision counts change.
    pred, target = paper_case()
    m = SegMetrics(2, tau=50)
    m.update(pred, target)
    r = m.compute()
    assert r.sample_miou == pytest.approx((40 / 41 + 0) / 2)
    c = r.sample.counts
    assert (c.tp, c.fp, c.fn, c.tn) == (0, 0, 2, 2)
    assert r.seg_recall == 0.0 and r.seg_precision is None  # no predicted positive: undefined, not NaN


def test_per_class_sample_iou() -> None:
    # 3 classes, two 2x2 samples. S1: class 1 GT 4 px, predicted exactly (IoU 1).
    # S2: class 1 GT 1 px, missed (IoU 0). Class 2 never appears.
    target = torch.tensor([[[1, 1], [1, 1]], [[1, 0], [0, 0]]])
    pred = torch.tensor([[[1, 1], [1, 1]], [[0, 0], [0, 0]]])
    m = SegMetrics(3)
    m.update(pred, target)
    r = m.compute()
    assert r.per_class_sample_iou == {"class1": 0.5, "class2": None}  # (1 + 0) / 2
    assert r.per_class_iou["class1"] == pytest.approx(4 / 5)  # pixel pooling: TP 4, FN 1


# ----------------------------------------------------------------------------- phi / tau

# Three 1x3 samples with classes bg, 1, 2 (probabilities per pixel):
PHI_PROBS = [
    [[[0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]],  # P: argmax all bg, max defect prob 0.6
    [[[0.2, 0.7, 0.1], [0.3, 0.1, 0.6], [0.8, 0.1, 0.1]]],  # Q: 2 defect pixels, max defect prob 0.8
    [[[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.7, 0.2, 0.1]]],  # R: all bg, max defect prob 0.3
]
PHI_TARGET = torch.tensor([[[1, 0, 0]], [[1, 2, 0]], [[0, 0, 0]]])  # P, Q defective, R clean


def phi_metrics(phi: str, tau: float | None = None) -> SegMetrics:
    m = SegMetrics(3, phi=phi, tau=tau)
    m.update(logits_from_probs(PHI_PROBS), PHI_TARGET)
    return m


def test_phi_pixels_vs_max_prob() -> None:
    pix, mp = phi_metrics("pixels"), phi_metrics("max_prob")
    assert pix.tau == 1.0 and mp.tau == 0.5
    assert pix.sample_scores().phi.tolist() == [0.0, 2.0, 0.0]
    assert mp.sample_scores().phi == pytest.approx([0.6, 0.8, 0.3], abs=1e-6)
    assert pix.sample_scores().label.tolist() == [True, True, False]
    # pixels, tau 1: P no (FN), Q yes (TP), R no (TN)
    c = pix.compute().sample.counts
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 0, 1, 1)
    # max_prob, tau 0.5: P yes (0.6), Q yes (0.8), R no (0.3) -> both defects caught
    c = mp.compute().sample.counts
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 0, 0, 1)
    # the mask-based metrics do not depend on phi
    assert pix.compute().sample_miou == mp.compute().sample_miou


def test_tau_boundary_is_inclusive() -> None:
    m = phi_metrics("pixels", tau=2)
    assert m.compute().sample.counts.tp == 1  # Q: phi 2 >= 2
    assert m.compute(tau=2.5).sample.counts.tp == 0
    mp = phi_metrics("max_prob")
    phi_p = float(mp.sample_scores().phi[0])
    assert mp.compute(tau=phi_p).sample.counts.tp == 2  # P exactly at tau counts as defective
    assert mp.compute(tau=math.nextafter(phi_p, 1.0)).sample.counts.tp == 1
    with pytest.raises(AutoNADError):
        mp.compute(tau=float("nan"))


# ----------------------------------------------------------------------------- CaP head


def cap_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four 4x4 binary samples with CaP logits.

    A: GT row 0 (4 px), predicted exactly (IoU 1); CaP +3 (p 0.953, yes).
    B: GT 1 px, predicted exactly (IoU 1); CaP -2 (p 0.119, says clean: a CaP miss).
    C: clean, 2 false-positive pixels; CaP -1 (p 0.269, clean).
    D: clean, clean prediction; CaP +1 (p 0.731, a CaP false alarm).
    """
    target = torch.zeros(4, 4, 4, dtype=torch.long)
    target[0, 0] = 1
    target[1, 2, 2] = 1
    pred = target.clone()
    pred[2, 3, :2] = 1
    return pred, target, torch.tensor([3.0, -2.0, -1.0, 1.0])


def test_cap_metrics_and_gating() -> None:
    pred, target, cap = cap_case()
    m = SegMetrics(2)
    m.update(pred, target, cap_logits=cap.view(4, 1))
    r = m.compute()
    # Segmentation only: relevant A (1), B (1), C (0) -> 2/3; decisions A TP, B TP, C FP, D TN.
    assert r.sample_miou == pytest.approx(2 / 3)
    assert (r.sample.counts.tp, r.sample.counts.fp, r.sample.counts.fn, r.sample.counts.tn) == (2, 1, 0, 1)
    # CaP @ 0.5: yes A, D -> TP 1 (A), FP 1 (D), FN 1 (B), TN 1 (C)
    assert (r.cap.tp, r.cap.fp, r.cap.fn, r.cap.tn) == (1, 1, 1, 1)
    assert (r.cap.accuracy, r.cap.recall, r.cap.precision, r.cap.f1) == (0.5, 0.5, 0.5, 0.5)
    # Gated output: A kept (IoU 1, TP); B zeroed (IoU 0/1, phi 0 -> FN); C zeroed (not relevant, TN);
    # D kept (not relevant, phi 0 -> TN) -> Sample_mIoU (1 + 0) / 2, acc 3/4, recall 1/2, precision 1.
    g = r.cap_gated
    assert g.sample_miou == pytest.approx(0.5) and g.m_eff == 2
    assert (g.counts.tp, g.counts.fp, g.counts.fn, g.counts.tn) == (1, 0, 1, 2)
    assert (g.seg_accuracy, g.seg_recall, g.seg_precision) == (0.75, 0.5, 1.0)
    # A permissive CaP (threshold 0.1 < every probability) gates nothing: gated == segmentation only.
    loose = m.compute(cap_threshold=0.1)
    assert loose.cap_gated == loose.sample and loose.cap.recall == 1.0
    d = r.to_dict()
    assert d["cap_recall"] == 0.5 and d["cap_gated"]["sample_miou"] == pytest.approx(0.5)
    assert m.sample_scores().cap_prob == pytest.approx(torch.sigmoid(cap).tolist())


def test_no_cap_means_no_cap_report_and_consistency_enforced() -> None:
    pred, target, cap = cap_case()
    m = SegMetrics(2)
    m.update(pred, target)
    r = m.compute()
    assert r.cap is None and r.cap_gated is None and "cap_accuracy" not in r.to_dict()
    assert m.sample_scores().cap_prob is None
    before = r.to_dict()
    with pytest.raises(ValueError, match="cap_logits"):
        m.update(pred, target, cap_logits=cap)
    assert m.compute().to_dict() == before  # a rejected batch leaves no trace
    with pytest.raises(ValueError):
        SegMetrics(2).update(pred, target, cap_logits=cap[:3])


# ----------------------------------------------------------------------------- accumulation


def random_batch(seed: int, b: int = 6, c: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, 8, 8, generator=g) * 2
    target = torch.randint(0, c, (b, 8, 8), generator=g)
    target[torch.rand(b, 8, 8, generator=g) < 0.1] = IGN
    target[0] = 0  # a clean sample
    return logits, target, torch.randn(b, generator=g)


@pytest.mark.parametrize("phi", ["pixels", "max_prob"])
def test_batches_equal_one_shot(phi: str) -> None:
    logits, target, cap = random_batch(0)
    one = SegMetrics(3, phi=phi)
    one.update(logits, target, cap)
    parts = SegMetrics(3, phi=phi)
    for lo, hi in [(0, 2), (2, 3), (3, 6)]:
        parts.update(logits[lo:hi], target[lo:hi], cap[lo:hi])
    close(one.compute().to_dict(), parts.compute().to_dict())
    assert one.compute().num_samples == 6
    parts.reset()
    assert parts.compute().num_samples == 0 and parts.compute().num_pixels == 0


def test_merge_equals_single_accumulator() -> None:
    logits, target, cap = random_batch(1)
    single = SegMetrics(3)
    single.update(logits, target, cap)
    a, b = SegMetrics(3), SegMetrics(3)
    a.update(logits[:4], target[:4], cap[:4])
    b.update(logits[4:], target[4:], cap[4:])
    b = pickle.loads(pickle.dumps(b))  # what all_gather_object does between ranks
    merged = SegMetrics(3).merge(a).merge(b)  # also merging into an empty one
    close(single.compute().to_dict(), merged.compute().to_dict())
    with pytest.raises(ValueError):
        a.merge(SegMetrics(4))
    no_cap = SegMetrics(3)
    no_cap.update(logits, target)
    with pytest.raises(ValueError):
        a.merge(no_cap)


# ----------------------------------------------------------------------------- calibration

# Ten validation samples, best score first; 5 defective (P), 5 clean (N).
CAL_SCORES = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
CAL_LABELS = [1, 1, 0, 1, 0, 1, 0, 0, 1, 0]
# tau:       .95  .9   .8   .7   .6   .5   .4   .3   .2   .1
# TP:         1    2    2    3    3    4    4    4    5    5
# FP:         0    0    1    1    2    2    3    4    4    5
# recall:    .2   .4   .4   .6   .6   .8   .8   .8   1    1
# precision:  1    1   2/3  3/4  3/5  2/3  4/7  1/2  5/9  1/2
# F1 (2TP/(2TP+FP+FN)): 2/6 4/7 4/8 6/9 6/10 8/11 8/12 8/13 10/14 10/15  -> best 8/11 at .5
# accuracy (TP+5-FP)/10: .6 .7 .6 .7 .6 .7 .6 .5 .6 .5 -> .7 at .9/.7/.5, tie -> highest recall (.5)
# precision+recall: 1.2 1.4 1.07 1.35 1.2 1.47 1.37 1.3 1.56 1.5 -> best at .2


@pytest.mark.parametrize(
    ("target", "tau"),
    [
        ("recall>=0.8", 0.5),  # feasible .5 .4 .3 .2 .1; best precision 2/3 at .5
        ("recall>=0.95", 0.2),  # feasible .2 (5/9), .1 (1/2)
        ("precision>=0.7", 0.7),  # feasible .95 .9 .7; best recall .6 at .7
        ("precision>=0.99", 0.9),  # .95 and .9 both precision 1; .9 has recall .4
        ("f1", 0.5),
        ("accuracy", 0.5),
        ("precision+recall", 0.2),
    ],
)
def test_calibrate_tau_hand_computed(target: str, tau: float) -> None:
    assert calibrate_tau(CAL_SCORES, CAL_LABELS, target) == tau


def confusion_at(tau: float) -> tuple[float, float]:
    pred = np.array(CAL_SCORES) >= tau
    y = np.array(CAL_LABELS, dtype=bool)
    tp = (pred & y).sum()
    return tp / y.sum(), tp / pred.sum()


@pytest.mark.parametrize("minimum", [0.2, 0.5, 0.6, 0.8, 0.9, 1.0])
def test_calibrate_recall_target_is_best_precision_under_it(minimum: float) -> None:
    tau = calibrate_tau(np.array(CAL_SCORES), torch.tensor(CAL_LABELS), f"recall>={minimum}")
    recall, precision = confusion_at(tau)
    assert recall >= minimum
    for other in CAL_SCORES:  # brute force over every possible threshold
        r, p = confusion_at(other)
        assert r < minimum or p <= precision


def test_calibrate_with_tied_scores_and_errors() -> None:
    # Two samples share 0.5, so no tau separates them: tau .5 -> TP 1 FP 1; tau .3 -> TP 2 FP 1.
    assert calibrate_tau([0.5, 0.5, 0.3], [1, 0, 1], "recall>=0.5") == 0.3  # precision 2/3 beats 1/2
    with pytest.raises(AutoNADError, match="precision>=0.99"):
        calibrate_tau([0.9, 0.5], [0, 1], "precision>=0.99")  # precision at best 1/2
    with pytest.raises(AutoNADError, match="defective"):
        calibrate_tau([0.9, 0.5], [0, 0], "f1")
    with pytest.raises(ValueError):
        calibrate_tau([0.9, 0.5], [1], "f1")


def test_calibrate_then_recompute_on_accumulator() -> None:
    m = phi_metrics("max_prob")  # phi P 0.6 (defective), Q 0.8 (defective), R 0.3 (clean)
    tau = m.calibrate("recall>=1")
    assert tau == pytest.approx(0.6, abs=1e-6)
    r = m.compute(tau=tau)
    assert r.seg_recall == 1.0 and r.seg_precision == 1.0 and r.tau == tau
    scores = m.sample_scores()
    assert calibrate_tau(scores.phi, scores.label, CalibrationTarget("recall", 1.0)) == tau


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("recall>=0.95", CalibrationTarget("recall", 0.95)),
        (" Recall >= .9 ", CalibrationTarget("recall", 0.9)),
        ("precision>=1", CalibrationTarget("precision", 1.0)),
        ("F1", CalibrationTarget("f1")),
        ("precision + recall", CalibrationTarget("precision+recall")),
        ("accuracy", CalibrationTarget("accuracy")),
    ],
)
def test_parse_target(text: str, parsed: CalibrationTarget) -> None:
    assert parse_target(text) == parsed
    assert parse_target(str(parsed)) == parsed


@pytest.mark.parametrize("text", ["recall>0.95", "recall>=1.5", "recall>=0", "speed>=0.9", "recall>=abc", "", "f2"])
def test_parse_target_rejects_bad_text(text: str) -> None:
    with pytest.raises(AutoNADError, match="bad calibration target") as info:
        parse_target(text)
    assert "\n" not in str(info.value)
    with pytest.raises(AutoNADError):
        calibrate_tau(CAL_SCORES, CAL_LABELS, text)


def test_bootstrap_se_of_a_mean_matches_its_analytic_error():
    """Sample_mIoU is a mean over images: its bootstrap SE is std / sqrt(n) (the plug-in estimate)."""
    from autonad.metrics import SegMetrics

    rng = np.random.default_rng(0)
    hits = rng.integers(1, 11, size=40)  # image i: 10 GT defect pixels, `hits[i]` of them predicted
    target = torch.zeros(40, 1, 20, dtype=torch.int64)
    target[:, 0, :10] = 1
    preds = torch.zeros_like(target)
    for i, k in enumerate(hits):
        preds[i, 0, :k] = 1
    metrics = SegMetrics(2)
    metrics.update(preds, target)
    ious = hits / 10.0
    assert metrics.compute().sample_miou == pytest.approx(ious.mean())
    se = metrics.bootstrap_se(("sample_miou", "miou"), resamples=3000)
    assert se["sample_miou"] == pytest.approx(ious.std() / np.sqrt(len(ious)), rel=0.1)
    assert 0 < se["miou"] < 0.1 and SegMetrics(2).bootstrap_se(("miou",)) == {"miou": None}


def test_pixel_thresholds_decode_the_most_probable_defect_class_over_its_threshold():
    from autonad.metrics import decode_labels

    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4], [0.2, 0.7, 0.1]]).T.reshape(1, 3, 1, 3)
    assert decode_labels(probs).tolist() == [[[0, 0, 1]]]
    assert decode_labels(probs, torch.tensor([0.15, 0.3])).tolist() == [[[1, 2, 1]]]
    assert decode_labels(probs, torch.tensor([float("nan"), 0.5])).tolist() == [[[0, 0, 1]]]  # nan: beat background


def test_fitted_pixel_thresholds_recover_a_faint_defect_class():
    """The defect's pixels get p = 0.3 (the argmax calls them background), the rest 0.1: the fitted
    threshold sits between and decoding with it finds every defect pixel and nothing else."""
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    target[:, 2:5, 2:5] = 1
    p = torch.where(target == 1, 0.3, 0.1)
    logits = torch.stack([1 - p, p], 1).log()
    plain = SegMetrics(2, phi="max_prob", pixel_histogram=True)
    plain.update(logits, target)
    assert plain.compute().per_class_iou["class1"] == 0.0
    (t,) = plain.pixel_thresholds_fit()
    assert 0.1 < t <= 0.3
    tuned = SegMetrics(2, phi="max_prob", pixel_thresholds=[t])
    tuned.update(logits, target)
    assert tuned.compute().per_class_iou["class1"] == 1.0
    empty = SegMetrics(2, phi="max_prob", pixel_histogram=True)
    empty.update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64))
    assert empty.pixel_thresholds_fit() == [None]  # no pixel of the class: no threshold


def test_per_class_taus_decide_each_class_and_the_sample():
    target = torch.zeros(2, 4, 4, dtype=torch.int64)
    target[0, 0, 0], target[1, 0, 0] = 1, 2
    p = torch.full((2, 3, 4, 4), 0.0)
    p[:, 0] = 1.0
    p[0, :, 0, 0] = torch.tensor([0.4, 0.6, 0.0])  # class 1 at 0.6
    p[1, :, 0, 0] = torch.tensor([0.8, 0.0, 0.2])  # class 2 at 0.2 only
    m = SegMetrics(3, phi="max_prob", class_names=["bg", "a", "b"])
    m.update((p + 1e-9).log(), target)
    one = m.compute(tau=0.5)
    assert one.per_class_sample["b"]["recall"] == 0.0 and one.decided.recall == 0.5
    each = m.compute(tau=0.5, class_tau=[0.5, 0.15])
    assert each.per_class_sample["b"]["recall"] == 1.0 and each.decided.recall == 1.0
    scores = m.sample_scores()
    assert scores.classes == ("a", "b") and scores.class_label.tolist() == [[True, False], [False, True]]
