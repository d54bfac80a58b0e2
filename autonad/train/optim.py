"""AdamW without weight decay on norms and biases, and cosine or poly decay after a linear warm-up."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay only weight matrices/kernels: 1-D parameters (norm scales, biases) get none."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.01
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the base lr, then cosine decay to `min_lr_ratio` of it (per step)."""
    return decay_with_warmup(optimizer, total_steps, warmup_steps, min_lr_ratio, "cosine")


def decay_with_warmup(
    optimizer: torch.optim.Optimizer,
    total_steps: int | Callable[[], int],
    warmup_steps: int,
    min_lr_ratio: float = 0.01,
    decay: str = "cosine",
    power: float = 0.9,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the base lr, then cosine or poly ((1 - progress) ** power, the paper's
    retraining schedule) decay to `min_lr_ratio` of it, per step. `total_steps` may be a callable, read
    at every step (a time budget re-plans it while training)."""
    if decay not in ("cosine", "poly"):
        raise ValueError(f"unknown decay '{decay}'")
    total_of = total_steps if callable(total_steps) else (lambda: total_steps)
    warmup_steps = min(max(0, warmup_steps), max(1, total_of()) - 1)

    def factor(step: int) -> float:
        total = max(1, total_of())
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else (1 - progress) ** power
        return min_lr_ratio + (1 - min_lr_ratio) * shape

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
