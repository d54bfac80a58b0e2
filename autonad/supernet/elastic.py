"""Elastic layers: one interface for every layer whose size follows the active architecture.

Every elastic layer stores the weights of its largest configuration and has

* ``set_active(...)`` - choose the active size (plain ints; no tensor is touched),
* ``forward(x)`` - compute with the active slices of the stored weights,
* ``extract() -> nn.Module`` - a plain torch layer with the active slices copied in,
* ``sliced_weights()`` - the tensors ``forward`` uses, as views of the parameters,
* ``active_slices()`` - parameter name -> index of the region the active size uses.

Slicing is a view, never a stored copy: widths are leading-channel slices ``[:out, :in]``,
smaller kernels centred slices of the stored kernel, dilated kernels strided slices. A kernel
call may still make a temporary contiguous copy of a strided view (``F.conv2d`` does for
non-contiguous weights; `ElasticShiftConv` reshapes its 5-D view); that happens inside forward
and frees with the step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import skip_init

from autonad.supernet.functional import kernel_positions

Index = tuple[slice, ...]


class Elastic(nn.Module):
    """Base of elastic layers (see the module docstring) and of the supernet's composite modules,
    which set their children's sizes in ``set_active`` and rebuild plain modules in ``extract``.
    Plain layers are created with ``skip_init`` (no random init: the weights are copied in)."""

    def extract(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement extract()")

    def sliced_weights(self) -> dict[str, Tensor]:
        """Parameter name -> the active view ``forward`` computes with."""
        return {name: getattr(self, name)[index] for name, index in self.active_slices().items()}

    def active_slices(self) -> dict[str, Index]:
        """Own parameter name -> active index (layers with parameters override this)."""
        return {}

    def active_children(self) -> Iterable[nn.Module]:
        """Sub-modules the active configuration computes with (all by default)."""
        return self.children()


def _copy_into(layer: nn.Module, **tensors: Tensor | None) -> nn.Module:
    """Copy the active slices into a plain layer; a supernet built on the meta device (`build_subnet`)
    has no values to copy, and its extraction gives the structure with uninitialised weights."""
    with torch.no_grad():
        for name, value in tensors.items():
            if value is not None and not value.is_meta:
                getattr(layer, name).copy_(value)
    return layer


class ElasticLinear(Elastic):
    """Linear layer sliced ``weight[:out, :in]``, ``bias[:out]``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, std: float = 0.02):
        super().__init__()
        self.max_in, self.max_out = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.trunc_normal_(self.weight, std=std)
        self.set_active(in_features, out_features)

    def set_active(self, in_features: int, out_features: int) -> None:
        if not (0 < in_features <= self.max_in and 0 < out_features <= self.max_out):
            raise ValueError(f"linear {in_features}->{out_features} exceeds {self.max_in}->{self.max_out}")
        self.in_features, self.out_features = in_features, out_features

    def active_slices(self) -> dict[str, Index]:
        out = {"weight": (slice(0, self.out_features), slice(0, self.in_features))}
        if self.bias is not None:
            out["bias"] = (slice(0, self.out_features),)
        return out

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias[: self.out_features]
        return F.linear(x, self.weight[: self.out_features, : self.in_features], bias)

    def extract(self) -> nn.Linear:
        w = self.sliced_weights()
        layer = skip_init(nn.Linear, self.in_features, self.out_features, bias=self.bias is not None)
        return _copy_into(layer, weight=w["weight"], bias=w.get("bias"))

    def extra_repr(self) -> str:
        return f"max {self.max_in}->{self.max_out}, active {self.in_features}->{self.out_features}"


def kernel_taps(stored: int, kernel: int, dilation: int) -> slice:
    """Spatial slice of a stored ``stored x stored`` kernel for a ``kernel`` x ``kernel`` kernel
    with ``dilation``: the whole kernel if the sizes match, else the centred taps ``dilation``
    apart (3x3 of 5x5 = ``[1:4]``, 1x1 = ``[2:3]``, dilated 3x3 = ``[0:5:2]``), so each stored
    tap keeps its spatial offset."""
    if kernel == stored:
        return slice(0, stored)
    span = dilation * (kernel - 1) + 1
    if kernel > stored or span > stored:
        raise ValueError(f"a {kernel}x{kernel} kernel with dilation {dilation} does not fit a stored {stored}x{stored}")
    start = (stored - span) // 2
    return slice(start, start + span, dilation)


class ElasticConv2d(Elastic):
    """Conv2d sliced ``weight[:out, :in, taps, taps]`` (``kernel_taps``), ``bias[:out]``.

    ``depthwise=True`` stores ``(C, 1, k, k)`` and uses groups = active channels.
    Padding keeps the spatial size for stride 1 ("same") and is ``span // 2`` in general.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        depthwise: bool = False,
    ):
        super().__init__()
        if depthwise and in_channels != out_channels:
            raise ValueError("a depthwise conv has as many outputs as inputs")
        self.max_in, self.max_out, self.stored_kernel = in_channels, out_channels, kernel_size
        self.stride, self.depthwise = stride, depthwise
        fan_in_channels = 1 if depthwise else in_channels
        self.weight = nn.Parameter(torch.empty(out_channels, fan_in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_out = kernel_size * kernel_size * (1 if depthwise else out_channels)
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / fan_out))
        self.set_active(in_channels, out_channels)

    def set_active(self, in_channels: int, out_channels: int, kernel: int | None = None, dilation: int = 1) -> None:
        if self.depthwise and in_channels != out_channels:
            raise ValueError("a depthwise conv has as many outputs as inputs")
        if not (0 < in_channels <= self.max_in and 0 < out_channels <= self.max_out):
            raise ValueError(f"conv {in_channels}->{out_channels} exceeds {self.max_in}->{self.max_out}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel = self.stored_kernel if kernel is None else kernel
        self.dilation = dilation
        self.taps = kernel_taps(self.stored_kernel, self.kernel, dilation)
        self.padding = (dilation * (self.kernel - 1) + 1) // 2

    @property
    def groups(self) -> int:
        return self.in_channels if self.depthwise else 1

    def active_slices(self) -> dict[str, Index]:
        ins = slice(0, 1) if self.depthwise else slice(0, self.in_channels)
        out = {"weight": (slice(0, self.out_channels), ins, self.taps, self.taps)}
        if self.bias is not None:
            out["bias"] = (slice(0, self.out_channels),)
        return out

    def forward(self, x: Tensor) -> Tensor:
        ins = 1 if self.depthwise else self.in_channels
        weight = self.weight[: self.out_channels, :ins, self.taps, self.taps]
        bias = None if self.bias is None else self.bias[: self.out_channels]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def extract(self) -> nn.Conv2d:
        w = self.sliced_weights()
        layer = skip_init(
            nn.Conv2d,
            self.in_channels,
            self.out_channels,
            self.kernel,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias is not None,
        )
        return _copy_into(layer, weight=w["weight"], bias=w.get("bias"))

    def extra_repr(self) -> str:
        kind = "depthwise " if self.depthwise else ""
        return (
            f"{kind}max {self.max_in}->{self.max_out} k{self.stored_kernel}, active {self.in_channels}->"
            f"{self.out_channels} k{self.kernel} d{self.dilation}, stride={self.stride}"
        )


class ElasticShiftConv(Elastic):
    """ACmix shift-and-aggregate conv: groups = head_dim, k*k inputs and ``heads`` outputs per
    group, initialised as shifts (input position p -> its kernel offset), learnable.

    Stored as ``(head_dim, max_heads, K*K, K, K)`` with positions ordered centre-out
    (`kernel_positions`), so k < K is the view ``[:, :heads, :k*k, taps, taps]`` and the k=3
    shift initialisation is exactly the centred part of the k=5 one. ``forward`` reshapes that
    view to the conv layout (a forward-time copy of a small weight).
    """

    def __init__(self, head_dim: int, max_heads: int, kernel_size: int):
        super().__init__()
        self.head_dim, self.max_heads, self.stored_kernel = head_dim, max_heads, kernel_size
        kk, c = kernel_size * kernel_size, kernel_size // 2
        shifts = torch.zeros(kk, kernel_size, kernel_size)
        for p, (dy, dx) in enumerate(kernel_positions(kernel_size)):
            shifts[p, c + dy, c + dx] = 1.0
        self.weight = nn.Parameter(shifts.expand(head_dim, max_heads, kk, kernel_size, kernel_size).clone())
        self.bias = nn.Parameter(torch.zeros(head_dim, max_heads))
        self.set_active(max_heads, kernel_size)

    def set_active(self, heads: int, kernel: int) -> None:
        if not (0 < heads <= self.max_heads):
            raise ValueError(f"{heads} heads exceed {self.max_heads}")
        self.heads, self.kernel = heads, kernel
        self.taps = kernel_taps(self.stored_kernel, kernel, 1)

    def active_slices(self) -> dict[str, Index]:
        all_dims = slice(0, self.head_dim)
        heads = slice(0, self.heads)
        return {
            "weight": (all_dims, heads, slice(0, self.kernel * self.kernel), self.taps, self.taps),
            "bias": (all_dims, heads),
        }

    def _conv_weights(self) -> tuple[Tensor, Tensor]:
        k, kk = self.kernel, self.kernel * self.kernel
        weight = self.weight[:, : self.heads, :kk, self.taps, self.taps]
        return weight.reshape(self.head_dim * self.heads, kk, k, k), self.bias[:, : self.heads].reshape(-1)

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self._conv_weights()
        return F.conv2d(x, weight, bias, 1, self.kernel // 2, 1, self.head_dim)

    def extract(self) -> nn.Conv2d:
        kk = self.kernel * self.kernel
        layer = skip_init(
            nn.Conv2d,
            self.head_dim * kk,
            self.head_dim * self.heads,
            self.kernel,
            padding=self.kernel // 2,
            groups=self.head_dim,
        )
        weight, bias = self._conv_weights()
        return _copy_into(layer, weight=weight, bias=bias)

    def extra_repr(self) -> str:
        stored = f"max {self.max_heads} heads k{self.stored_kernel}"
        return f"head_dim={self.head_dim}, {stored}, active {self.heads} heads k{self.kernel}"


class ElasticLayerNorm(Elastic):
    """LayerNorm over the last dim, sliced ``[:C]``."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.max_channels, self.eps = channels, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.set_active(channels)

    def set_active(self, channels: int) -> None:
        if not (0 < channels <= self.max_channels):
            raise ValueError(f"{channels} channels exceed {self.max_channels}")
        self.channels = channels

    def active_slices(self) -> dict[str, Index]:
        return {"weight": (slice(0, self.channels),), "bias": (slice(0, self.channels),)}

    def forward(self, x: Tensor) -> Tensor:
        c = self.channels
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def extract(self) -> nn.LayerNorm:
        w = self.sliced_weights()
        return _copy_into(skip_init(nn.LayerNorm, self.channels, eps=self.eps), weight=w["weight"], bias=w["bias"])

    def extra_repr(self) -> str:
        return f"max {self.max_channels}, active {self.channels}"


class ElasticGroupNorm(Elastic):
    """GroupNorm with a fixed number of channels per group, sliced ``[:C]``.

    Fixing channels per group (not the group count) keeps every channel in the same group at
    every width, so inherited weights and statistics mean the same thing in every subnet.
    """

    def __init__(self, channels: int, channels_per_group: int, eps: float = 1e-5):
        super().__init__()
        self.max_channels, self.channels_per_group, self.eps = channels, channels_per_group, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.set_active(channels)

    def set_active(self, channels: int) -> None:
        if not (0 < channels <= self.max_channels) or channels % self.channels_per_group:
            raise ValueError(
                f"{channels} channels: not a multiple of {self.channels_per_group} up to {self.max_channels}"
            )
        self.channels = channels

    def active_slices(self) -> dict[str, Index]:
        return {"weight": (slice(0, self.channels),), "bias": (slice(0, self.channels),)}

    def forward(self, x: Tensor) -> Tensor:
        c = self.channels
        return F.group_norm(x, c // self.channels_per_group, self.weight[:c], self.bias[:c], self.eps)

    def extract(self) -> nn.GroupNorm:
        w = self.sliced_weights()
        layer = skip_init(nn.GroupNorm, self.channels // self.channels_per_group, self.channels, eps=self.eps)
        return _copy_into(layer, weight=w["weight"], bias=w["bias"])

    def extra_repr(self) -> str:
        return f"max {self.max_channels}, active {self.channels}, {self.channels_per_group} channels/group"


class ElasticChoice(Elastic):
    """One of several weight banks, picked by key (the weight-sharing modes map op choices to
    keys, `autonad.supernet.sharing`). Forward and extract go to the active bank."""

    def __init__(self, banks: Mapping[str, Elastic]):
        super().__init__()
        self.banks = nn.ModuleDict(dict(banks))
        self.active = next(iter(self.banks))

    def set_active(self, key: str) -> None:
        if key not in self.banks:
            raise KeyError(f"no weight bank '{key}' (have {', '.join(self.banks)})")
        self.active = key

    @property
    def current(self) -> nn.Module:
        return self.banks[self.active]

    def active_children(self) -> Iterable[nn.Module]:
        return [self.current]

    def forward(self, x: Tensor) -> Tensor:
        return self.banks[self.active](x)

    def extract(self) -> nn.Module:
        return self.current.extract()
