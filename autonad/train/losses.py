"""Training losses: segmentation (CE + optional Dice), the CaP joint loss, in-place distillation.

CaP joint loss (paper 000 eq. 8): w_seg * L_seg + w_cls * L_cls with fixed weights (0.5/0.5), or
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


class JointLoss(nn.Module):
    """Segmentation loss plus, when a CaP logit is given, the sample-level BCE (paper 000)."""

    def __init__(
        self,
        seg: SegLoss,
        weighting: Literal["fixed", "uncertainty"] = "fixed",
        w_seg: float = 0.5,
        w_cls: float = 0.5,
        pos_weight: float | None = None,
    ):
        super().__init__()
        self.seg = seg
        self.weighting = weighting
        self.w_seg, self.w_cls = w_seg, w_cls
        self.register_buffer("pos_weight", torch.tensor(pos_weight) if pos_weight else None)
        # log-variances of the two tasks; parameters only in uncertainty mode
        self.log_vars = nn.Parameter(torch.zeros(2)) if weighting == "uncertainty" else None

    def forward(
        self, seg_logits: torch.Tensor, target: torch.Tensor, cap_logit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        l_seg = self.seg(seg_logits, target)
        if cap_logit is None:
            return l_seg, {"seg": l_seg.item()}
        label = defect_present(target, self.seg.ignore_index)
        l_cls = F.binary_cross_entropy_with_logits(cap_logit.reshape(-1), label, pos_weight=self.pos_weight)
        if self.log_vars is None:
            total = self.w_seg * l_seg + self.w_cls * l_cls
        else:
            s = self.log_vars
            total = 0.5 * (torch.exp(-s[0]) * l_seg + s[0]) + 0.5 * (torch.exp(-s[1]) * l_cls + s[1])
        return total, {"seg": l_seg.item(), "cls": l_cls.item()}


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """In-place distillation (sandwich rule): pixel-wise KL to the largest subnet's soft labels."""
    teacher = teacher_logits.detach().softmax(dim=1)
    return F.kl_div(student_logits.log_softmax(dim=1), teacher, reduction="none").sum(1).mean()
