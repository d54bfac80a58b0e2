"""Training losses: segmentation (CE + optional Dice), the CaP joint loss, in-place distillation.

CaP joint loss (paper 000 eq. 8): w_seg * L_seg + w_cls * L_presence (+ w_classes * L_classes, the
class stage of paper 004) with fixed weights (0.5 each), or
learned homoscedastic-uncertainty weights (Kendall et al. 2018, used by paper 002):
sum_i 0.5 * exp(-s_i) * L_i + 0.5 * s_i with s_i = log sigma_i^2 learned (paper 002 prints the
weight differently; we follow the original derivation, which is the well-posed one).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """1 - mean soft Dice over the defect classes present in the batch (background excluded)."""
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    probs = logits.softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)[1:]
    denom = (probs.sum(dims) + onehot.sum(dims))[1:]
    present = onehot.sum(dims)[1:] > 0
    if not present.any():
        return logits.sum() * 0.0
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return 1 - dice[present].mean()


def sqrt_inverse_frequency(pixel_counts: list[int] | torch.Tensor) -> torch.Tensor:
    """Class weights proportional to 1/sqrt(pixel frequency), normalised to mean 1.

    Rare defect classes (a fraction of a percent of the pixels) would otherwise be swamped by the
    background; the square root keeps the weights moderate (full inverse frequency is unstable).
    """
    counts = torch.as_tensor(pixel_counts, dtype=torch.float64).clamp(min=1)
    weights = (counts.sum() / counts).sqrt()
    return (weights / weights.mean()).float()


class SegLoss(nn.Module):
    def __init__(
        self, dice_weight: float = 0.0, class_weights: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX
    ):
        super().__init__()
        self.dice_weight = dice_weight
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, target, weight=self.class_weights, ignore_index=self.ignore_index)
        if self.dice_weight:
            loss = loss + self.dice_weight * dice_loss(logits, target, self.ignore_index)
        return loss


def defect_present(target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Sample-level label: 1.0 where any pixel belongs to a defect class."""
    return ((target > 0) & (target != ignore_index)).flatten(1).any(dim=1).float()


def classes_present(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Multi-label sample targets `[B, num_classes - 1]`: 1.0 where the sample has a pixel of defect class c."""
    flat = target.flatten(1)
    return torch.stack([(flat == c).any(dim=1) for c in range(1, num_classes)], dim=1).float()


def class_balanced_pos_weight(has_class: list[list[bool]], cap: float = 50.0) -> torch.Tensor:
    """Per-class BCE positive weights for the class stage: negatives / positives among the defective
    training samples (paper 004 weights its tail classes up), between 1 and `cap` (a class on every
    defective sample keeps weight 1; one seen on few samples is not allowed to dominate)."""
    rows = torch.tensor(has_class, dtype=torch.float64).reshape(len(has_class), -1)
    pos = rows.sum(0)
    neg = rows.shape[0] - pos
    return (neg / pos.clamp(min=1)).clamp(1.0, cap).float()


class JointLoss(nn.Module):
    """Segmentation loss plus the two CaP stages (papers 000 and 004), each where its logits are given:
    stage 1, defect presence (BCE over every sample); stage 2, the defect classes (multi-label BCE of
    the defective samples only, class-balanced by `class_pos_weight`). Logged as `presence`/`classes`."""

    def __init__(
        self,
        seg: SegLoss,
        weighting: Literal["fixed", "uncertainty"] = "fixed",
        w_seg: float = 0.5,
        w_cls: float = 0.5,
        pos_weight: float | None = None,
        class_pos_weight: torch.Tensor | None = None,
        w_classes: float = 0.5,
    ):
        super().__init__()
        self.seg = seg
        self.weighting = weighting
        self.w_seg, self.w_cls, self.w_classes = w_seg, w_cls, w_classes
        self.register_buffer("pos_weight", torch.tensor(pos_weight) if pos_weight else None)
        # derived from the training split, so not saved: checkpoints keep the state dict they had
        self.register_buffer("class_pos_weight", class_pos_weight, persistent=False)
        # log-variances of the tasks (segmentation, presence[, classes]); parameters only in uncertainty mode
        tasks = 3 if class_pos_weight is not None else 2
        self.log_vars = nn.Parameter(torch.zeros(tasks)) if weighting == "uncertainty" else None

    def forward(
        self,
        seg_logits: torch.Tensor,
        target: torch.Tensor,
        cap_logit: torch.Tensor | None = None,
        class_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        terms = {"seg": self.seg(seg_logits, target)}
        label = defect_present(target, self.seg.ignore_index)
        if cap_logit is not None:
            terms["presence"] = F.binary_cross_entropy_with_logits(
                cap_logit.reshape(-1), label, pos_weight=self.pos_weight
            )
        if class_logits is not None:
            terms["classes"] = self._class_stage(class_logits, target, label.bool(), seg_logits.shape[1])
        logged = {k: v.item() for k, v in terms.items()}
        if len(terms) == 1:
            return terms["seg"], logged
        return self._combine(terms), logged

    def _class_stage(self, logits: torch.Tensor, target: torch.Tensor, defective: torch.Tensor, k: int) -> torch.Tensor:
        """Mean over the batch of each sample's class BCE, clean samples counting 0: normalised by the
        batch size, not by its defective count, so DDP ranks' average is the whole batch's loss."""
        per_sample = F.binary_cross_entropy_with_logits(
            logits, classes_present(target, k), pos_weight=self.class_pos_weight, reduction="none"
        ).mean(dim=1)
        return (per_sample * defective).mean()

    def _combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.log_vars is None:
            weights = {"seg": self.w_seg, "presence": self.w_cls, "classes": self.w_classes}
            return sum(weights[k] * v for k, v in terms.items())
        index = {"seg": 0, "presence": 1, "classes": len(self.log_vars) - 1}
        s = self.log_vars
        return sum(0.5 * (torch.exp(-s[index[k]]) * v + s[index[k]]) for k, v in terms.items())


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """In-place distillation (sandwich rule): pixel-wise KL to the largest subnet's soft labels."""
    teacher = teacher_logits.detach().softmax(dim=1)
    return F.kl_div(student_logits.log_softmax(dim=1), teacher, reduction="none").sum(1).mean()
