"""Params and FLOPs of a subnet, measured on its extracted model (never a hand counter).

Both counters report multiply-accumulates ("FLOPs" in the usual vision-paper sense):

* fvcore (`FlopCountAnalysis`) traces the model and counts convs, linears and *functional*
  matmuls (attention, the pooling matmuls) plus norms, pooling and upsampling;
* thop hooks leaf `nn.Module`s: Conv2d, Linear and norms, but misses functional ops (attention
  matmuls, adaptive pooling, interpolation).

So on the conv/linear layers they agree exactly, and thop's total is lower by the functional
ops and higher by its norm convention; `complexity` reports both.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from autonad.space import Arch, SearchSpace
from autonad.supernet.config import HeadsConfig, SupernetConfig


@dataclass(frozen=True)
class Complexity:
    params: int
    flops_fvcore: int
    flops_thop: int

    @property
    def flops(self) -> int:
        """The reference count (fvcore)."""
        return self.flops_fvcore


class _TupleOutput(nn.Module):
    """Tracers want tensors or tuples: the dict outputs as a tuple."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(x).values())


def _size(input_size: int | tuple[int, int]) -> tuple[int, int]:
    return (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)


def fvcore_flops(model: nn.Module, x: torch.Tensor, by_operator: bool = False) -> int | dict[str, int]:
    with warnings.catch_warnings():  # fvcore scripts and traces with torch.jit, deprecated in torch 2.13
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        analysis = FlopCountAnalysis(_TupleOutput(model), x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        return dict(analysis.by_operator()) if by_operator else int(analysis.total())


def thop_flops(model: nn.Module, x: torch.Tensor, custom_ops: dict | None = None) -> int:
    import thop

    # thop leaves buffers on modules it has no rule for: count on a copy.
    ops, _ = thop.profile(copy.deepcopy(model), inputs=(x,), custom_ops=custom_ops, verbose=False)
    return int(ops)


def complexity(model: nn.Module, input_size: int | tuple[int, int], in_channels: int = 3) -> Complexity:
    """Params and FLOPs (batch 1) of a plain model, e.g. ``Supernet.extract(arch)``."""
    h, w = _size(input_size)
    param = next(model.parameters())
    x = torch.zeros(1, in_channels, h, w, device=param.device, dtype=param.dtype)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return Complexity(
                params=sum(p.numel() for p in model.parameters()),
                flops_fvcore=fvcore_flops(model, x),
                flops_thop=thop_flops(model, x),
            )
    finally:
        model.train(training)


def arch_complexity(
    space: SearchSpace | SupernetConfig,
    arch: Arch,
    input_size: int | tuple[int, int],
    num_classes: int,
) -> Complexity:
    """Params/FLOPs of ``arch``: builds a supernet (default settings for a bare space), extracts."""
    from autonad.supernet.supernet import Supernet

    if isinstance(space, SupernetConfig):
        supernet = Supernet(space, num_classes)
    else:
        config = SupernetConfig(name=f"{space.name}-default", search_space=space.name, heads=HeadsConfig(cap=True))
        supernet = Supernet(config, num_classes, space=space)
    return complexity(supernet.extract(arch), input_size, supernet.space.in_channels)
