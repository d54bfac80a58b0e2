"""Pure tensor functions shared by the supernet and the extracted (static) models.

Tensor layout is explicit everywhere:

* inside encoder stages a feature map is channels-last, ``(B, H, W, C)``: linear layers and
  LayerNorm act on the last dim; spatial ops (depthwise/grouped convs) see it through
  ``to_nchw`` (a permuted *view* with channels-last strides, no copy) and give it back with
  ``to_nhwc``;
* the decoder and the image are ``(B, C, H, W)``;
* the fused q/k/v projection output is interleaved per channel, ``[..., 3C] = [q0, k0, v0, q1,
  ...]``, so that ``view(B, H, W, C, 3)`` separates q, k and v and a leading slice of the
  projection weight (rows ``[:3C]``) selects the q/k/v rows of the first C channels.

Nothing here knows about the supernet: these functions are the Step II math of the three
operators (paper eqs. 24-26), written once and compiled by TorchScript for the static models,
so this file deliberately has no ``from __future__ import annotations``.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def to_nchw(x: Tensor) -> Tensor:
    """``(B, H, W, C) -> (B, C, H, W)`` as a view (channels-last strides)."""
    return x.permute(0, 3, 1, 2)


def to_nhwc(x: Tensor) -> Tensor:
    """``(B, C, H, W) -> (B, H, W, C)`` as a view."""
    return x.permute(0, 2, 3, 1)


def upsample_like(x: Tensor, ref: Tensor) -> Tensor:
    """Bilinear resize of an NCHW map to the spatial size of ``ref`` (NCHW)."""
    return F.interpolate(x, size=[ref.shape[-2], ref.shape[-1]], mode="bilinear", align_corners=False)


# -- adaptive average pooling -----------------------------------------------------------------
def pooling_matrix(in_size: int, out_size: int, like: Tensor) -> Tensor:
    """``(out_size, in_size)`` matrix whose row i averages PyTorch's adaptive-pool bin i.

    Bin i covers ``[floor(i * in / out), ceil((i + 1) * in / out))``, exactly as
    ``F.adaptive_avg_pool2d``; it is never empty, so ``out_size > in_size`` works too.
    """
    i = torch.arange(out_size, device=like.device)
    start = torch.div(i * in_size, out_size, rounding_mode="floor")
    end = torch.div((i + 1) * in_size + out_size - 1, out_size, rounding_mode="floor")
    pos = torch.arange(in_size, device=like.device)
    inside = (pos.unsqueeze(0) >= start.unsqueeze(1)) & (pos.unsqueeze(0) < end.unsqueeze(1))
    return inside.to(like.dtype) / (end - start).unsqueeze(1).to(like.dtype)


def adaptive_avg_pool(x: Tensor, out_h: int, out_w: int) -> Tensor:
    """Adaptive average pooling of an NCHW map as two matmuls.

    Same bins as ``F.adaptive_avg_pool2d``, but it exports to ONNX for any output size (ONNX has
    no adaptive pooling and the exporters reject sizes that do not divide the input), e.g. PPM
    pool sizes larger than a small stage-4 map.
    """
    ph = pooling_matrix(x.shape[-2], out_h, x)
    pw = pooling_matrix(x.shape[-1], out_w, x)
    return torch.matmul(torch.matmul(ph, x), pw.t())


def adaptive_avg_pool_nhwc(x: Tensor, out_h: int, out_w: int) -> Tensor:
    """`adaptive_avg_pool` of a ``(B, H, W, C)`` map, as two batched matmuls without permutes."""
    b, h, w, c = x.shape
    ph = pooling_matrix(h, out_h, x)
    pw = pooling_matrix(w, out_w, x)
    y = torch.matmul(ph, x.reshape(b, h, w * c)).reshape(b * out_h, w, c)
    return torch.matmul(pw, y).reshape(b, out_h, out_w, c)


# -- Step II: transformer ---------------------------------------------------------------------
def spatial_reduction_attention(qkv: Tensor, head_dim: int, sr_ratio: int) -> Tensor:
    """Multi-head attention with keys/values average-pooled by ``sr_ratio`` (paper eq. 24).

    ``qkv``: interleaved ``(B, H, W, 3C)``; returns ``(B, H, W, C)`` with head-major channels
    (channel ``head * head_dim + d``). Pooling k and v *after* the shared projection keeps Step I
    shared; since pooling and a linear projection commute it equals pooling x first (PVTv2-li).
    """
    b, h, w, c3 = qkv.shape
    c = c3 // 3
    heads = c // head_dim
    t = qkv.view(b, h, w, c, 3)
    q = t[..., 0]
    kv = t[..., 1:]
    if sr_ratio > 1:
        rh = (h + sr_ratio - 1) // sr_ratio
        rw = (w + sr_ratio - 1) // sr_ratio
        kv = adaptive_avg_pool_nhwc(kv.reshape(b, h, w, c * 2), rh, rw).view(b, rh, rw, c, 2)
    m = kv.shape[1] * kv.shape[2]
    q = q.reshape(b, h * w, heads, head_dim).transpose(1, 2)
    k = kv[..., 0].reshape(b, m, heads, head_dim).transpose(1, 2)
    v = kv[..., 1].reshape(b, m, heads, head_dim).transpose(1, 2)
    attn = torch.matmul(q, k.transpose(-2, -1)) * (head_dim**-0.5)
    out = torch.matmul(attn.softmax(dim=-1), v)  # (B, heads, N, d)
    return out.transpose(1, 2).reshape(b, h, w, c)


# -- Step II: convolution (ACmix) -------------------------------------------------------------
def kernel_positions(kernel: int) -> list[list[int]]:
    """Offsets ``[dy, dx]`` of a k x k kernel ordered centre-out (ring by ring, row-major within
    a ring), so the first ``j * j`` positions of a k x k kernel are the centred j x j kernel and a
    smaller kernel's rows of W^P are a leading slice of the larger kernel's."""
    r = kernel // 2
    offsets = [[dy, dx] for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    return sorted(offsets, key=lambda o: (max(abs(o[0]), abs(o[1])), o[0], o[1]))


def acmix_gather(qkv: Tensor, head_dim: int) -> Tensor:
    """Interleaved ``(B, H, W, 3C)`` -> ``(B, H, W, head_dim, 3 * heads)``: per pixel and head-dim
    index, the concatenation over heads of (q, k, v) (index ``head * 3 + j``) that W^P mixes
    (paper eq. 25); heads are leading, so fewer heads is a leading slice of W^P's input."""
    b, h, w, c3 = qkv.shape
    heads = c3 // (3 * head_dim)
    return qkv.view(b, h, w, heads, head_dim, 3).transpose(3, 4).reshape(b, h, w, head_dim, 3 * heads)


def acmix_heads_first(y: Tensor, head_dim: int) -> Tensor:
    """Grouped shift-conv output ``(B, C, H, W)`` (groups = head_dim, so channel
    ``d * heads + j``) -> ``(B, H, W, C)`` with head-major channels ``j * head_dim + d``, the
    layout of the attention output, so the shared output projection sees the same channel order
    for every operator and every width."""
    b, c, h, w = y.shape
    return y.view(b, head_dim, c // head_dim, h, w).permute(0, 3, 4, 2, 1).reshape(b, h, w, c)


# -- Step II: MLP (S2-MLPv2) ------------------------------------------------------------------
def _shift(x: Tensor, direction: int) -> Tensor:
    """Shift a (B, H, W, c) map by one pixel; the vacated border keeps its value (S2-MLP).

    direction 0: down (row i takes row i-1), 1: up, 2: right (column j takes j-1), 3: left.
    """
    if direction == 0:
        return torch.cat([x[:, :1], x[:, :-1]], dim=1)
    if direction == 1:
        return torch.cat([x[:, 1:], x[:, -1:]], dim=1)
    if direction == 2:
        return torch.cat([x[:, :, :1], x[:, :, :-1]], dim=2)
    return torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)


def spatial_shift(x: Tensor, first_direction: int) -> Tensor:
    """S2-MLPv2 spatial shift of a ``(B, H, W, C)`` map in four channel groups.

    Channel c is in group ``c % 4`` and moves in direction ``(first_direction + group) % 4``
    (see `_shift`): ``first_direction=0`` is paper eq. 18 (down, up, right, left),
    ``first_direction=2`` is eq. 19 (right, left, down, up). Groups are interleaved rather than
    contiguous quarters so that a channel moves the same way at every searched width.
    """
    b, h, w, c = x.shape
    groups = x.view(b, h, w, c // 4, 4)
    parts = [_shift(groups[..., g], (first_direction + g) % 4) for g in range(4)]
    return torch.stack(parts, dim=-1).view(b, h, w, c)


def split_attention(x1: Tensor, x2: Tensor, x3: Tensor, logits: Tensor) -> Tensor:
    """ViP split attention: weight three ``(B, H, W, C)`` branches by a softmax over branches of
    ``logits`` ``(B, 3C)``, laid out ``[c * 3 + branch]`` (so widths slice it at ``[:3C]``)."""
    b, h, w, c = x1.shape
    a = logits.view(b, 1, 1, c, 3).softmax(dim=-1)
    return x1 * a[..., 0] + x2 * a[..., 1] + x3 * a[..., 2]


# -- regularisation ---------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode or with rate 0)."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        shape = [x.shape[0]] + [1] * (x.dim() - 1)
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:g}"
