"""Kernel classes of the latency estimate: ATen kernels that run alike on a device.

A device reaches a different share of its roofline on each class (a dense convolution keeps the
arithmetic units busy, a depthwise one is starved by memory and cache traffic, a layer norm is
several passes over its input), so the calibrated estimate (`autonad.latency.roofline`) gives
each class its own achieved fraction.
"""

from __future__ import annotations

KERNEL_CLASSES = ("conv", "dwconv", "matmul", "norm", "elementwise")
KERNEL_CLASS_HELP = {
    "conv": "dense convolutions (groups = 1)",
    "dwconv": "depthwise and other grouped convolutions",
    "matmul": "matrix products: linear layers, attention",
    "norm": "normalisations and softmax (reductions over a tensor)",
    "elementwise": "everything else: activations, additions, pooling, resampling, copies",
}

_NORM_NAMES = ("batch_norm", "layer_norm", "group_norm", "softmax")


def kernel_class(name: str, args: tuple) -> str:
    """The class of the ATen kernel `name` (its overload packet's name) called with `args`."""
    if "conv" in name:  # input, weight, ...: grouped when the weight sees a fraction of the input channels
        return "dwconv" if args[0].shape[1] > args[1].shape[1] else "conv"
    if name in ("mm", "addmm", "bmm", "baddbmm", "matmul") or "scaled_dot_product" in name:
        return "matmul"
    if any(n in name for n in _NORM_NAMES):
        return "norm"
    return "elementwise"
