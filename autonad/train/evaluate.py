"""Evaluate a network on a loader: one subnet of a supernet (inherited weights: validation, the
search) or a standalone, retrained subnet."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from autonad.metrics import SegMetrics
from autonad.space import Arch


def bf16_autocast(device: torch.device | str, on: bool):
    """bf16 autocast on `device` when `on` (the one place training, validation and benches make it)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if on else contextlib.nullcontext()


@torch.no_grad()
def accumulate_arch(
    net: torch.nn.Module,
    arch: Arch,
    loader: DataLoader,
    classes: Sequence[str],
    device: torch.device,
    bf16: bool = False,
) -> SegMetrics:
    """Set `arch` on the supernet and accumulate every metric over `loader` (eval mode); `classes` are
    the dataset's class names, background first. `.compute()` gives the report; the accumulator also
    holds per-sample figures such as the bootstrap error."""
    net.set_arch(arch)
    return accumulate(net, loader, SegMetrics(len(classes), class_names=classes), device, bf16)


@torch.no_grad()
def accumulate(
    net: torch.nn.Module, loader: DataLoader, metrics: SegMetrics, device: torch.device | str, bf16: bool = False
) -> SegMetrics:
    """Run `net` (eval mode, fp32 or under bf16 autocast; its train/eval mode is restored) over
    `loader` into `metrics` (logits are compared in fp32)."""
    was_training = net.training
    net.eval()
    device = torch.device(device)
    for images, masks in loader:
        with bf16_autocast(device, bf16):
            out = net(images.to(device))
        metrics.update(out["seg"].float(), masks.to(device), out.get("cap"))
    net.train(was_training)
    return metrics
