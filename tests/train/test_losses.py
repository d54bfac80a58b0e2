import math

import torch
import torch.nn.functional as F

from autonad.train.losses import (
    JointLoss,
    SegLoss,
    class_balanced_pos_weight,
    classes_present,
    defect_present,
    dice_loss,
    distill_loss,
)


def test_dice_is_zero_for_a_perfect_prediction_and_ignores_void():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2, :2] = 1
    target[0, 3, 3] = 255
    logits = F.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(logits, target).item() < 1e-3
    assert dice_loss(-logits, target).item() > 0.9


def test_seg_loss_is_cross_entropy_plus_weighted_dice():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    ce = F.cross_entropy(logits, target)
    assert torch.isclose(SegLoss()(logits, target), ce)
    assert torch.isclose(SegLoss(dice_weight=0.5)(logits, target), ce + 0.5 * dice_loss(logits, target))


def test_joint_loss_fixed_and_uncertainty_weighting():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    target[1, 0, 0] = 1
    assert defect_present(target).tolist() == [0.0, 1.0]
    cap = torch.tensor([0.3, -0.2])
    l_seg = F.cross_entropy(logits, target)
    l_cls = F.binary_cross_entropy_with_logits(cap, torch.tensor([0.0, 1.0]))
    total, parts = JointLoss(SegLoss())(logits, target, cap)
    assert torch.isclose(total, 0.5 * l_seg + 0.5 * l_cls)
    assert set(parts) == {"seg", "presence"}
    # uncertainty weighting starts at s=0: 0.5 * (L_seg + L_cls), and learns its log-variances
    loss = JointLoss(SegLoss(), weighting="uncertainty")
    total, _ = loss(logits, target, cap)
    assert torch.isclose(total, 0.5 * (l_seg + l_cls))
    total.backward()
    assert loss.log_vars.grad is not None and loss.log_vars.grad.abs().sum() > 0
    # positive/negative imbalance weighting raises the cost of a missed defective sample
    weighted, parts = JointLoss(SegLoss(), pos_weight=9.0)(logits, target, cap)
    assert parts["presence"] > l_cls.item()
    seg_only, parts = JointLoss(SegLoss())(logits, target)
    assert torch.isclose(seg_only, l_seg) and set(parts) == {"seg"}


def test_distillation_is_zero_against_itself_and_only_trains_the_student():
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert math.isclose(distill_loss(student, student.detach()).item(), 0.0, abs_tol=1e-6)
    distill_loss(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None


def test_the_class_stage_is_multilabel_bce_over_defective_samples_only():
    torch.manual_seed(0)
    target = torch.zeros(3, 4, 4, dtype=torch.long)
    target[1, 0, 0], target[1, 3, 3], target[2, 1, 1] = 1, 3, 2  # sample 0 is defect-free
    assert classes_present(target, 4).tolist() == [[0, 0, 0], [1, 0, 1], [0, 1, 0]]
    logits, cls = torch.randn(3, 4, 4, 4), torch.randn(3, 3, requires_grad=True)
    weight = torch.tensor([1.0, 2.0, 4.0])
    total, parts = JointLoss(SegLoss(), class_pos_weight=weight, w_classes=0.25)(logits, target, None, cls)
    per_sample = F.binary_cross_entropy_with_logits(
        cls[1:], classes_present(target, 4)[1:], pos_weight=weight, reduction="none"
    ).mean(1)
    want = per_sample.sum() / 3  # normalised by the batch (3 samples), the clean one counting 0
    assert set(parts) == {"seg", "classes"} and math.isclose(parts["classes"], want.item(), rel_tol=1e-6)
    assert torch.isclose(total, 0.5 * F.cross_entropy(logits, target) + 0.25 * want)
    total.backward()
    assert cls.grad[0].abs().sum() == 0 and cls.grad[1:].abs().sum() > 0  # the clean sample teaches nothing
    # a batch without a defective sample gives the stage nothing (0, not NaN)
    _, parts = JointLoss(SegLoss(), class_pos_weight=weight)(logits[:1], target[:1], None, cls[:1])
    assert parts["classes"] == 0.0


def test_class_balanced_weights_favour_tail_classes():
    # 8 defective samples: class 1 on all, class 2 on 4, class 3 on 1, class 4 on none
    rows = [[True, i < 4, i == 0, False] for i in range(8)]
    assert class_balanced_pos_weight(rows).tolist() == [1.0, 1.0, 7.0, 8.0 / 1]
    assert class_balanced_pos_weight(rows, cap=5.0).tolist() == [1.0, 1.0, 5.0, 5.0]


def test_uncertainty_weighting_has_a_log_variance_per_stage():
    loss = JointLoss(SegLoss(), weighting="uncertainty", class_pos_weight=torch.ones(2))
    assert loss.log_vars.shape == (3,) and "class_pos_weight" not in loss.state_dict()
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[1, 0, 0] = 2
    total, _ = loss(torch.randn(2, 3, 4, 4), target, torch.randn(2), torch.randn(2, 2))
    total.backward()
    assert (loss.log_vars.grad != 0).all()
