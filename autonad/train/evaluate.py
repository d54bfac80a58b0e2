"""Evaluate a network on a loader: one subnet of a supernet (inherited weights: validation, the
search) or a standalone, retrained subnet."""

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
    net.set_arch(arch)
    return accumulate(net, loader, SegMetrics(num_classes), device).compute()


@torch.no_grad()
def accumulate(net: torch.nn.Module, loader: DataLoader, metrics: SegMetrics, device: torch.device) -> SegMetrics:
    """Run `net` (eval mode, fp32; its train/eval mode is restored) over `loader` into `metrics`."""
    was_training = net.training
    net.eval()
    for images, masks in loader:
        out = net(images.to(device))
        metrics.update(out["seg"].float(), masks.to(device), out.get("cap"))
    net.train(was_training)
    return metrics
