"""The network's structure: small modules whose layers are passed in.

Each module here only wires its layers together. The supernet fills the slots with elastic
layers (`autonad.supernet.elastic`) and adds `set_active`/`extract` in subclasses
(`autonad.supernet.supernet`); `extract` builds the *same* classes with plain torch layers
(`nn.Linear`, `nn.Conv2d`, `nn.LayerNorm`, `nn.GroupNorm`), which is the standalone subnet. So
the forward math exists once, and the static model has no supernet code path. These classes
are compiled by TorchScript, hence no ``from __future__ import annotations`` in this file.

Layouts (see `autonad.supernet.functional`): encoder tensors are ``(B, H, W, C)``, decoder
tensors ``(B, C, H, W)``.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from autonad.space import HeadsArch
from autonad.supernet.functional import (
    DropPath,
    acmix_gather,
    acmix_heads_first,
    adaptive_avg_pool,
    spatial_reduction_attention,
    spatial_shift,
    split_attention,
    to_nchw,
    to_nhwc,
    upsample_like,
)


# -- Step II operators: interleaved qkv (B, H, W, 3C) -> (B, H, W, C), head-major channels ------
class SpatialReductionAttention(nn.Module):
    """Transformer Step II (eq. 24): multi-head attention, k/v pooled by ``sr_ratio``.

    Parameter-free: heads follow from the input width (``C / head_dim``).
    """

    def __init__(self, head_dim: int, sr_ratio: int):
        super().__init__()
        self.head_dim = head_dim
        self.sr_ratio = sr_ratio

    def forward(self, qkv: Tensor) -> Tensor:
        return spatial_reduction_attention(qkv, self.head_dim, self.sr_ratio)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, sr_ratio={self.sr_ratio}"


class ACmixConv(nn.Module):
    """Convolution Step II (eq. 25, ACmix): per head-dim index, W^P (``fc``) maps the 3 * heads
    q/k/v values to k*k position features, and ``shift`` (a k x k conv grouped by head-dim index,
    initialised as shifts) moves each to its kernel offset and sums."""

    def __init__(self, fc: nn.Module, shift: nn.Module, head_dim: int):
        super().__init__()
        self.fc = fc
        self.shift = shift
        self.head_dim = head_dim

    def forward(self, qkv: Tensor) -> Tensor:
        b, h, w, _ = qkv.shape
        f = self.fc(acmix_gather(qkv, self.head_dim))  # (B, H, W, head_dim, k*k)
        y = self.shift(to_nchw(f.reshape(b, h, w, -1)))  # channel = d * k*k + position
        return acmix_heads_first(y, self.head_dim)


class ShiftMLP(nn.Module):
    """MLP Step II (eq. 26, S2-MLPv2): spatial-shift q (eq. 18) and k (eq. 19), keep v, and
    reweight the three branches by split attention (pooled sum -> fc1 -> GELU -> fc2 -> softmax)."""

    def __init__(self, fc1: nn.Module, fc2: nn.Module):
        super().__init__()
        self.fc1 = fc1
        self.fc2 = fc2

    def forward(self, qkv: Tensor) -> Tensor:
        b, h, w, c3 = qkv.shape
        t = qkv.view(b, h, w, c3 // 3, 3)
        x1 = spatial_shift(t[..., 0], 0)
        x2 = spatial_shift(t[..., 1], 2)
        x3 = t[..., 2]
        logits = self.fc2(F.gelu(self.fc1((x1 + x2 + x3).mean(dim=(1, 2)))))
        return split_attention(x1, x2, x3, logits)


# -- encoder ----------------------------------------------------------------------------------
class MixFFN(nn.Module):
    """Linear C -> hidden, depthwise 3x3, GELU, linear back (SegFormer Mix-FFN)."""

    def __init__(self, fc1: nn.Module, dwconv: nn.Module, fc2: nn.Module):
        super().__init__()
        self.fc1 = fc1
        self.dwconv = dwconv
        self.fc2 = fc2

    def forward(self, x: Tensor) -> Tensor:
        x = to_nhwc(self.dwconv(to_nchw(self.fc1(x))))
        return self.fc2(F.gelu(x))


class Block(nn.Module):
    """Pre-norm residual block: ``x + DropPath(proj(StepII(qkv(LN x))))``, then
    ``x + DropPath(MixFFN(LN x))``. ``qkv`` is Step I (three 1x1 projections C -> C, fused and
    interleaved), ``mixer`` Step II, ``proj`` the output projection."""

    def __init__(
        self,
        norm1: nn.Module,
        qkv: nn.Module,
        mixer: nn.Module,
        proj: nn.Module,
        norm2: nn.Module,
        ffn: nn.Module,
        drop_path: float,
    ):
        super().__init__()
        self.norm1 = norm1
        self.qkv = qkv
        self.mixer = mixer
        self.proj = proj
        self.norm2 = norm2
        self.ffn = ffn
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.proj(self.mixer(self.qkv(self.norm1(x)))))
        return x + self.drop_path(self.ffn(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: strided conv (NCHW in) then LayerNorm (NHWC out)."""

    def __init__(self, conv: nn.Module, norm: nn.Module):
        super().__init__()
        self.conv = conv
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(to_nhwc(self.conv(x)))


class ConvStem(nn.Module):
    """Convolutional stem for stage 1 (the "early convolutions" of Xiao et al. 2021, as in
    EfficientFormer-style hybrids): 3x3/s2 conv, GroupNorm, GELU at 1/2 resolution, then 3x3/s2 conv
    and LayerNorm (NHWC out) at 1/4, in place of one 7x7/s4 patch embedding. It only changes how
    pixels become stage-1 tokens; the searchable operators are untouched."""

    def __init__(self, conv1: nn.Module, norm1: nn.Module, conv2: nn.Module, norm: nn.Module):
        super().__init__()
        self.conv1 = conv1
        self.norm1 = norm1
        self.conv2 = conv2
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(to_nhwc(self.conv2(F.gelu(self.norm1(self.conv1(x))))))


class Stage(nn.Module):
    """Patch embedding, the first ``depth`` blocks, LayerNorm; NCHW in, NHWC out."""

    def __init__(self, embed: nn.Module, blocks: nn.ModuleList, norm: nn.Module, depth: int):
        super().__init__()
        self.embed = embed
        self.blocks = blocks
        self.norm = norm
        self.depth = depth

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        for i, block in enumerate(self.blocks):
            if i < self.depth:
                x = block(x)
        return self.norm(x)


class Encoder(nn.Module):
    """Four stages; returns the four NHWC stage outputs (strides 4, 8, 16, 32)."""

    def __init__(self, stages: nn.ModuleList):
        super().__init__()
        self.stages = stages

    def forward(self, x: Tensor) -> list[Tensor]:
        features: list[Tensor] = []
        for stage in self.stages:
            y = stage(x)
            features.append(y)
            x = to_nchw(y)
        return features


# -- decoder (MFAM) ---------------------------------------------------------------------------
class ConvNormAct(nn.Module):
    """A searchable MFAM edge: conv (1x1/3x3/5x5/dilated/depthwise-separable), GroupNorm, ReLU."""

    def __init__(self, conv: nn.Module, norm: nn.Module):
        super().__init__()
        self.conv = conv
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class MFAM(nn.Module):
    """Multi-level feature aggregation (paper IV-C; UPerNet-like), NHWC features in, NCHW out.

    PPM on the stage-4 map: per branch, adaptive-avg-pool to ``pool_sizes[i]``, edge conv
    (``ppm_edges[i]``, C4 -> C4/4), then the bottleneck 1x1 conv over ``concat(f4, upsampled
    branches)`` -> width D. FPN: lateral edges of stages 1-3 to D, top-down addition, FPN-output
    edges; all four levels are fused at 1/4 resolution by a 1x1 conv over their concatenation.

    A 1x1 conv over a concatenation of upsampled maps equals the sum of per-part 1x1 convs
    upsampled afterwards (both are linear; bilinear weights sum to one), so both 1x1 convs are
    stored per part (``ppm_skip``/``ppm_projs`` and ``fuse``; no bias, a GroupNorm follows the
    sum) and applied before upsampling: exact, and several times cheaper at 1/4 resolution.
    """

    def __init__(
        self,
        ppm_edges: nn.ModuleList,
        ppm_projs: nn.ModuleList,
        ppm_skip: nn.Module,
        ppm_norm: nn.Module,
        laterals: nn.ModuleList,
        fpn_edges: nn.ModuleList,
        fuse: nn.ModuleList,
        fuse_norm: nn.Module,
        pool_sizes: list[int],
    ):
        super().__init__()
        self.ppm_edges = ppm_edges
        self.ppm_projs = ppm_projs
        self.ppm_skip = ppm_skip
        self.ppm_norm = ppm_norm
        self.laterals = laterals
        self.fpn_edges = fpn_edges
        self.fuse = fuse
        self.fuse_norm = fuse_norm
        self.pool_sizes = pool_sizes

    def pyramid_pooling(self, f4: Tensor) -> Tensor:
        y = self.ppm_skip(f4)
        i = 0
        for edge, proj in zip(self.ppm_edges, self.ppm_projs):
            p = self.pool_sizes[i]
            y = y + upsample_like(proj(edge(adaptive_avg_pool(f4, p, p))), f4)
            i += 1
        return F.relu(self.ppm_norm(y))

    def forward(self, features: list[Tensor]) -> Tensor:
        levels: list[Tensor] = []
        for i, lateral in enumerate(self.laterals):
            levels.append(lateral(to_nchw(features[i])))
        top = self.pyramid_pooling(to_nchw(features[3]))
        levels.append(top)
        for i in range(len(levels) - 2, -1, -1):  # top-down pathway
            levels[i] = levels[i] + upsample_like(levels[i + 1], levels[i])
        outs: list[Tensor] = []
        for i, edge in enumerate(self.fpn_edges):
            outs.append(edge(levels[i]))
        outs.append(top)
        y = outs[0]
        for i, proj in enumerate(self.fuse):
            if i == 0:
                y = proj(outs[0])
            else:
                y = y + upsample_like(proj(outs[i]), y)
        return F.relu(self.fuse_norm(y))


# -- heads ------------------------------------------------------------------------------------
class DetailPath(nn.Module):
    """Refines the 1/4-resolution class scores at 1/2 (or full) resolution from the image itself, so
    that defects 1-3 px wide (scratches, hairline cracks) are not lost to bilinear upsampling.

    Two conv-GN-ReLU layers read the image (3x3 with stride 2 or 1, then 3x3), the
    decoder map is projected to the same width (1x1 at 1/4, then upsampled: exact, the conv is
    linear) and added to a 3x3 conv of the detail map, and a 1x1 classifier of the GN-ReLU of that
    sum is added to the coarse scores upsampled to the detail map's size (a zero classifier leaves the
    coarse scores, at stride 2 upsampled in two bilinear steps instead of one)."""

    def __init__(self, down: nn.Module, refine: nn.Module, proj: nn.Module, mix: nn.Module, norm: nn.Module,
                 classifier: nn.Module):  # fmt: skip
        super().__init__()
        self.down = down
        self.refine = refine
        self.proj = proj
        self.mix = mix
        self.norm = norm
        self.classifier = classifier

    def forward(self, x: Tensor, image: Tensor, coarse: Tensor) -> Tensor:
        d = self.refine(self.down(image))
        h = F.relu(self.norm(self.mix(d) + upsample_like(self.proj(x), d)))
        return upsample_like(coarse, d) + self.classifier(h)


class TwoLevelDetailPath(nn.Module):
    """A U-Net-like detail path (a space's `detail_levels: 2`): the image is read by two conv-GN-ReLU
    layers at full resolution (width d) and two more at 1/2 (2d, the first with stride 2); from the
    decoder's 1/4-resolution map down, each level adds a 1x1 projection of the coarser map
    (upsampled after it: exact, the conv is linear) to a 3x3 conv of its own features, then GN-ReLU
    and a refining conv-GN-ReLU; a 1x1 classifier of the full-resolution map is added to the coarse
    scores. Measured on thin defects (bench/time_to_quality.py, 1500 steps) a hybrid subnet with it
    reaches defect IoU 0.5 sooner than a U-Net (500 vs 600 steps; best 0.64 vs 0.75), one level
    without refinement 0.57."""

    def __init__(self, full_res: nn.Module, half_res: nn.Module, merge_half: nn.Module, merge_full: nn.Module,
                 classifier: nn.Module):  # fmt: skip
        super().__init__()
        self.full_res = full_res
        self.half_res = half_res
        self.merge_half = merge_half
        self.merge_full = merge_full
        self.classifier = classifier

    def forward(self, x: Tensor, image: Tensor, coarse: Tensor) -> Tensor:
        f1 = self.full_res(image)
        f2 = self.half_res(f1)
        h = self.merge_full(f1, self.merge_half(f2, x))
        return upsample_like(coarse, h) + self.classifier(h)


class DetailMerge(nn.Module):
    """One level of `TwoLevelDetailPath`: GN-ReLU of (3x3 conv of the level's features + the 1x1
    projection of the coarser map, upsampled), then a refining conv-GN-ReLU."""

    def __init__(self, proj: nn.Module, mix: nn.Module, norm: nn.Module, refine: nn.Module):
        super().__init__()
        self.proj = proj
        self.mix = mix
        self.norm = norm
        self.refine = refine

    def forward(self, features: Tensor, coarser: Tensor) -> Tensor:
        return self.refine(F.relu(self.norm(self.mix(features) + upsample_like(self.proj(coarser), features))))


class SegHead(nn.Module):
    """Dropout, 1x1 classifier at 1/4 resolution (refined at 1/2 or full resolution by an optional
    `DetailPath` or `TwoLevelDetailPath`), bilinear upsampling to the input size."""

    def __init__(self, classifier: nn.Module, dropout: float, detail: nn.Module | None = None):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier
        self.detail = detail
        self.detail_on = detail is not None  # the supernet's head keeps its detail path for archs without

    def forward(self, x: Tensor, image: Tensor) -> Tensor:
        x = self.dropout(x)
        scores = self.classifier(x)
        if self.detail is not None and self.detail_on:
            scores = self.detail(x, image, scores)
        return upsample_like(scores, image)


class CaPHead(nn.Module):
    """Classifier-as-Plugin (paper 000): global-pooled top encoder feature -> fc1 -> GELU -> fc2.

    Output column 0 is the defect-presence logit; further columns (multi-label option) are
    per-defect-class logits. It reads the encoder only, so its loss trains the encoder and itself.
    """

    def __init__(self, fc1: nn.Module, fc2: nn.Module):
        super().__init__()
        self.fc1 = fc1
        self.fc2 = fc2

    def forward(self, top: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(top.mean(dim=(1, 2)))))


class SegmentationNet(nn.Module):
    """Encoder + MFAM + segmentation head (+ optional CaP head).

    ``forward(x)`` returns a dict: ``seg`` (B, classes, H, W) logits at the input size; with the
    CaP head ``cap`` (B,) defect-presence logits (stage 1) and/or ``cls`` (B, classes - 1) per-class
    logits (stage 2), as `heads` turns them on: an output whose stage was not trained is not given.
    ``metadata`` holds plain strings (arch JSON, space, supernet, ...) for export.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        seg_head: nn.Module,
        cap_head: nn.Module | None,
        metadata: dict[str, str],
        heads: HeadsArch | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.seg_head = seg_head
        self.cap_head = cap_head
        heads = heads if heads is not None else HeadsArch(cap=cap_head is not None)
        self.set_heads(heads)
        self.metadata = metadata

    def set_heads(self, heads: HeadsArch) -> None:
        self.presence_on, self.classes_on = heads.cap, heads.classes  # plain bools: TorchScript reads them

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.encoder(x)
        out: dict[str, Tensor] = {"seg": self.seg_head(self.decoder(features), x)}
        if self.cap_head is not None and (self.presence_on or self.classes_on):
            z = self.cap_head(features[3])
            if self.presence_on:
                out["cap"] = z[:, 0]
            if self.classes_on and z.shape[1] > 1:
                out["cls"] = z[:, 1:]
        return out
