"""The inverted-residual operator (MBConv, MobileNetV2/EfficientNet) in the two-step form.

Step I is the block's shared q/k/v projection C -> 3C, read here as MBConv's 1x1 expansion
(ratio 3); Step II, this operator's own weights, is a depthwise k x k convolution over the 3C
expanded channels, GELU, and a 1x1 projection 3C -> C (the block's output projection follows).
Depthwise convolutions and 1x1s map well to edge accelerators (no attention, no shift gathers).
Kernel sizes come from the stage's `kernels:`; the bank stores the largest, smaller ones slice
its centre (cross-size sharing), and widths slice the first 3w expanded channels, which are
exactly the q/k/v of the first w channels in the interleaved layout.

Compiled by TorchScript, hence no ``from __future__ import annotations`` in this file.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from autonad.supernet.elastic import Elastic, ElasticConv2d, ElasticLinear
from autonad.supernet.functional import to_nchw, to_nhwc
from autonad.supernet.operators import Step2Slot, register_step2


class InvertedResidual(nn.Module):
    """Step II of `mbconv`: interleaved qkv (B, H, W, 3C) -> depthwise k x k -> GELU -> (B, H, W, C)."""

    def __init__(self, dwconv: nn.Module, fc: nn.Module):
        super().__init__()
        self.dwconv = dwconv
        self.fc = fc

    def forward(self, qkv: Tensor) -> Tensor:
        return self.fc(F.gelu(to_nhwc(self.dwconv(to_nchw(qkv)))))


@register_step2("mbconv")
class SuperInvertedResidual(InvertedResidual, Elastic):
    def __init__(self, max_width: int, max_kernel: int):
        expanded = 3 * max_width
        super().__init__(
            ElasticConv2d(expanded, expanded, max_kernel, depthwise=True), ElasticLinear(expanded, max_width)
        )

    @classmethod
    def from_slot(cls, slot: Step2Slot) -> "SuperInvertedResidual":
        return cls(slot.max_width, slot.max_kernel)

    def set_active(self, width: int, kernel: int | None) -> None:
        if kernel is None:
            raise ValueError("an mbconv block needs a kernel size")
        self.dwconv.set_active(3 * width, 3 * width, kernel)
        self.fc.set_active(3 * width, width)

    def extract(self) -> InvertedResidual:
        return InvertedResidual(self.dwconv.extract(), self.fc.extract())
