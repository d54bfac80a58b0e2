"""Evaluate one subnet of a supernet with inherited weights (validation, and later the search)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from autonad.metrics import MetricsReport, SegMetrics
from autonad.space import Arch


@torch.no_grad()
def evaluate_arch(
    net: torch.nn.Module, arch: Arch, loader: DataLoader, num_classes: int, device: torch.device
) -> MetricsReport:
    """Set `arch` on the supernet and compute every metric over `loader` (eval mode, fp32)."""
    was_training = net.training
    net.set_arch(arch)
    net.eval()
    metrics = SegMetrics(num_classes)
    for images, masks in loader:
        out = net(images.to(device))
        metrics.update(out["seg"].float(), masks.to(device), out.get("cap"))
    net.train(was_training)
    return metrics.compute()
