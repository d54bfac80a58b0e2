import math

import torch
import torch.nn.functional as F

from autonad.train.losses import JointLoss, SegLoss, defect_present, dice_loss, distill_loss


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
    assert set(parts) == {"seg", "cls"}
    # uncertainty weighting starts at s=0: 0.5 * (L_seg + L_cls), and learns its log-variances
    loss = JointLoss(SegLoss(), weighting="uncertainty")
    total, _ = loss(logits, target, cap)
    assert torch.isclose(total, 0.5 * (l_seg + l_cls))
    total.backward()
    assert loss.log_vars.grad is not None and loss.log_vars.grad.abs().sum() > 0
    # positive/negative imbalance weighting raises the cost of a missed defective sample
    weighted, parts = JointLoss(SegLoss(), pos_weight=9.0)(logits, target, cap)
    assert parts["cls"] > l_cls.item()
    seg_only, parts = JointLoss(SegLoss())(logits, target)
    assert torch.isclose(seg_only, l_seg) and set(parts) == {"seg"}


def test_distillation_is_zero_against_itself_and_only_trains_the_student():
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert math.isclose(distill_loss(student, student.detach()).item(), 0.0, abs_tol=1e-6)
    distill_loss(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None
