"""Published networks with published timings: what calibrates the estimate of a device we
cannot measure (`autonad.latency.roofline.fit_estimate`).

Paper 003's Table VIII times its baselines and AutoNAD's searched model on an RTX 3090 and a
Jetson Xavier NX under one protocol. Two of its baselines are standard networks we can rebuild
exactly (their parameter counts match the table's): DeepLabv3+ on ResNet-101 and SegFormer on
MiT-B4. Their rows calibrate a device's estimate; AutoNAD's own row (8.5 ms / 85.1 ms, 5.9 M
parameters) is then a held-out check. The table states no input size; we take 320x320, the
paper's own training size (section V-A), and say so wherever the figures appear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autonad.errors import AutoNADError
from autonad.latency.table import RooflineSpec

TABLE8 = "paper 003 Table VIII"
TABLE8_INPUT = (320, 320)  # not stated by the table: the paper's training size
TABLE8_AUTONAD = {"params_m": 5.9, "rtx3090": 8.5, "jetson-xavier-nx": 85.1}


@dataclass(frozen=True)
class PublishedNetwork:
    name: str
    build: Callable[[int], nn.Module]  # classes -> network
    params_m: float  # the published parameter count (M), which the rebuild must match
    latency_ms: dict[str, float]  # device -> published end-to-end ms
    source: str
    input_size: tuple[int, int] = TABLE8_INPUT

    def citation(self, device: str) -> str:
        h, w = self.input_size
        return f"{self.source}: {self.name} {self.latency_ms[device]:g} ms (taken at {h}x{w})"


# -- DeepLabv3+ (ResNet-101, output stride 16) -----------------------------------------------------


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        cout = planes * 4
        self.body = nn.Sequential(
            _conv_bn(cin, planes), _conv_bn(planes, planes, 3, stride, dilation), _conv_bn(planes, cout, relu=False)
        )
        self.short = _conv_bn(cin, cout, 1, stride, relu=False) if (stride != 1 or cin != cout) else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.short(x))


def _resnet_layer(cin: int, planes: int, blocks: int, stride: int, dilation: int = 1) -> nn.Sequential:
    first = Bottleneck(cin, planes, stride, max(1, dilation // 2))  # torchvision's dilated ResNet
    return nn.Sequential(first, *(Bottleneck(planes * 4, planes, 1, dilation) for _ in range(blocks - 1)))


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ (Chen et al., 2018) on ResNet-101 at output stride 16 (layer 4 dilated), ASPP
    with rates 6/12/18 and image pooling, 48-channel low-level projection: 59.3 M parameters."""

    def __init__(self, classes: int):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        self.layer1 = _resnet_layer(64, 64, 3, 1)
        self.rest = nn.Sequential(
            _resnet_layer(256, 128, 4, 2), _resnet_layer(512, 256, 23, 2), _resnet_layer(1024, 512, 3, 1, 2)
        )
        self.aspp = nn.ModuleList([_conv_bn(2048, 256)] + [_conv_bn(2048, 256, 3, dilation=r) for r in (6, 12, 18)])
        self.pool = _conv_bn(2048, 256)
        self.project = _conv_bn(5 * 256, 256)
        self.low = _conv_bn(256, 48)
        self.fuse = nn.Sequential(_conv_bn(304, 256, 3), _conv_bn(256, 256, 3), nn.Conv2d(256, classes, 1))

    def forward(self, x: Tensor) -> Tensor:
        low = self.layer1(self.stem(x))
        top = self.rest(low)
        pooled = F.interpolate(self.pool(F.adaptive_avg_pool2d(top, 1)), size=top.shape[2:], mode="bilinear")
        y = self.project(torch.cat([b(top) for b in self.aspp] + [pooled], 1))
        y = F.interpolate(y, size=low.shape[2:], mode="bilinear", align_corners=False)
        y = self.fuse(torch.cat([y, self.low(low)], 1))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


# -- SegFormer (MiT-B4) ----------------------------------------------------------------------------


class OverlapEmbed(nn.Module):
    def __init__(self, cin: int, dim: int, k: int, stride: int):
        super().__init__()
        self.proj, self.norm = nn.Conv2d(cin, dim, k, stride, k // 2), nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientAttention(nn.Module):
    """Multi-head attention whose keys and values come from a map shrunk `sr` times per side."""

    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.heads, self.sr = heads, sr
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        if sr > 1:
            self.reduce, self.norm = nn.Conv2d(dim, dim, sr, sr), nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        kv = x
        if self.sr > 1:
            kv = self.norm(self.reduce(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(kv).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    def __init__(self, dim: int, ratio: int = 4):
        super().__init__()
        hidden = dim * ratio
        self.fc1, self.dw, self.fc2 = (
            nn.Linear(dim, hidden),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        y = self.fc1(x)
        b, n, c = y.shape
        y = self.dw(y.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(y))


class MiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), EfficientAttention(dim, heads, sr)
        self.norm2, self.ffn = nn.LayerNorm(dim), MixFFN(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class SegFormer(nn.Module):
    """SegFormer (Xie et al., 2021) with the MiT-B4 encoder (depths 3/8/27/3, widths
    64/128/320/512) and its all-MLP decoder of width 768: 64.1 M parameters."""

    DIMS, DEPTHS, HEADS, SR = (64, 128, 320, 512), (3, 8, 27, 3), (1, 2, 5, 8), (8, 4, 2, 1)

    def __init__(self, classes: int, decoder: int = 768):
        super().__init__()
        cins = (3, *self.DIMS[:-1])
        self.embeds = nn.ModuleList(
            OverlapEmbed(cin, d, 7 if i == 0 else 3, 4 if i == 0 else 2)
            for i, (cin, d) in enumerate(zip(cins, self.DIMS))
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(MiTBlock(d, hd, sr) for _ in range(n))
            for d, n, hd, sr in zip(self.DIMS, self.DEPTHS, self.HEADS, self.SR)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in self.DIMS)
        self.linears = nn.ModuleList(nn.Linear(d, decoder) for d in self.DIMS)
        self.fuse = nn.Sequential(nn.Conv2d(4 * decoder, decoder, 1, bias=False), nn.BatchNorm2d(decoder), nn.ReLU())
        self.classify = nn.Conv2d(decoder, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        size, feats, y = x.shape[2:], [], x
        for embed, blocks, norm in zip(self.embeds, self.stages, self.norms):
            t, h, w = embed(y)
            for block in blocks:
                t = block(t, h, w)
            y = norm(t).transpose(1, 2).reshape(t.shape[0], -1, h, w)
            feats.append(y)
        quarter = feats[0].shape[2:]
        outs = [
            F.interpolate(lin(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(f.shape[0], -1, *f.shape[2:]),
                          size=quarter, mode="bilinear", align_corners=False)
            for lin, f in zip(self.linears, feats)
        ]  # fmt: skip
        y = self.classify(self.fuse(torch.cat(outs[::-1], 1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


PUBLISHED_NETWORKS = (
    PublishedNetwork(
        "DeepLabv3+ (ResNet-101)", DeepLabV3Plus, 59.2, {"rtx3090": 10.9, "jetson-xavier-nx": 110.8}, TABLE8
    ),
    PublishedNetwork("SegFormer (MiT-B4)", SegFormer, 64.0, {"rtx3090": 31.5, "jetson-xavier-nx": 378.0}, TABLE8),
)


def published_for(device: str) -> list[PublishedNetwork]:
    """The published networks timed on `device`, or one line naming the devices that have some."""
    found = [n for n in PUBLISHED_NETWORKS if device in n.latency_ms]
    if not found:
        have = sorted({d for n in PUBLISHED_NETWORKS for d in n.latency_ms})
        raise AutoNADError(
            f"no published timings on '{device}' to calibrate an estimate with (there are for: {', '.join(have)})"
        )
    return found


def calibrate_on_published(spec: RooflineSpec, device: str, classes: int = 2) -> RooflineSpec:
    """`spec` with one achieved fraction and a per-kernel cost fitted on the published networks'
    timings on `device` (two or three rows: too few for a fraction per kernel class)."""
    from autonad.latency.roofline import fit_estimate, kernel_counts

    nets = published_for(device)
    counts = [kernel_counts(n.build(classes), [torch.zeros(1, 3, *n.input_size)], spec) for n in nets]
    measured = [n.latency_ms[device] for n in nets]
    return fit_estimate(counts, measured, spec, [n.citation(device) for n in nets], per_class=False)
