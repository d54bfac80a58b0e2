"""The additive latency model's parts: every arch is a sum of components with stable keys.

An extracted `SegmentationNet` runs, in order: per stage a patch embedding (+ the stage's final
LayerNorm) and its blocks; then MFAM's lateral edges, PPM branches (pool, edge, 1x1 projection,
upsample, add), FPN output edges, and the rest of the decoder (PPM skip conv and norm, top-down
additions, fusion convs, norms) and the segmentation head. A component is one of these parts at
one signature (stage, operator, widths, FFN ratio, resolution, pool size, classes), e.g.

    s2.conv3 w64 r8.0        a stage-2 conv (k=3) block, width 64, FFN ratio 8.0
    s3.embed c96-160         stage-3 patch embedding 96 -> 160 channels (+ stage norm)
    s1.stem c3-32            stage-1 conv stem (`ConvStem`, a space's `stem: conv`) 3 -> 32 channels
    lateral1 dil3x3 c32-128  lateral edge of stage 1, 32 -> 128 channels
    ppm dwsep3x3 c288 p6     one PPM branch at pool size 6 on a 288-channel stage-4 map
    decoder c288-128         the decoder outside its searchable edges
    head c128 k4             segmentation classifier (4 classes) and upsampling
    head c128 k4 d16         the same with a 16-wide detail path (`DetailPath`) at 1/2 resolution
                             (`d16s1`: at full resolution, a space's `detail_stride: 1`;
                             `d16l2`: two levels, full and 1/2 resolution, `detail_levels: 2`)

Resolutions are fixed by the table's input size, so they are not part of the keys. The same
keys serve the measured profiler, the roofline estimate and the predictor, so an arch maps to
its keys in exactly one place (`arch_keys`). The CaP head (a pooled vector through two small
linear layers, well under 0.1 ms) is left to the calibrated constant.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autonad.space import EDGE_NAMES, Arch, BlockArch, SearchSpace, block_operators, parse_choice
from autonad.supernet import Supernet, SupernetConfig
from autonad.supernet.config import HeadsConfig
from autonad.supernet.functional import adaptive_avg_pool, to_nchw, upsample_like
from autonad.supernet.modules import MFAM, Stage
from autonad.supernet.supernet import SuperSegHead


def calibration_kinds() -> tuple[str, ...]:
    """The kinds the latency calibration fits one scale each for: one per registered block operator."""
    return ("embed", *(op.calibration_kind for op in block_operators()), "edge", "ppm", "decoder", "head")


@dataclass(frozen=True)
class Component:
    key: str
    kind: str  # one of `calibration_kinds()`: the calibration fits one scale per kind
    build: Callable[[], tuple[nn.Module, tuple[Tensor, ...]]]  # plain module + its inputs


def stage_resolutions(input_size: tuple[int, int], space: SearchSpace) -> list[tuple[int, int]]:
    """(H, W) of each stage output: every patch embedding has padding (k - 1) / 2, so ceil(in / s)."""
    sizes, (h, w), prev = [], input_size, 1
    for st in space.stages:
        ratio = st.stride // prev
        h, w = -(-h // ratio), -(-w // ratio)
        sizes.append((h, w))
        prev = st.stride
    return sizes


# -- keys ---------------------------------------------------------------------------------------
def embed_key(stage: int, cin: int, width: int, stem: str = "patch") -> str:
    """`s2.embed c32-64`; stage 1 of a space with the conv stem is `s1.stem c3-32` (another module)."""
    return f"s{stage}.{'stem' if stage == 1 and stem == 'conv' else 'embed'} c{cin}-{width}"


def block_key(stage: int, choice: str, width: int, ffn_ratio: float) -> str:
    return f"s{stage}.{choice} w{width} r{float(ffn_ratio):.2f}"


def lateral_key(level: int, op: str, cin: int, width: int) -> str:
    return f"lateral{level} {op} c{cin}-{width}"


def fpn_key(level: int, op: str, width: int) -> str:
    return f"fpn{level} {op} c{width}"


def ppm_key(op: str, top: int, pool: int) -> str:
    return f"ppm {op} c{top} p{pool}"


def decoder_key(top: int, width: int) -> str:
    return f"decoder c{top}-{width}"


def head_key(width: int, classes: int, detail: int = 0, detail_stride: int = 2, detail_levels: int = 1) -> str:
    """`head c128 k4`, with a detail path `... d16` (1/2 resolution), `... d16s1` (full resolution) or
    `... d16l2` (two levels, full and 1/2 resolution)."""
    if not detail:
        return f"head c{width} k{classes}"
    form = "l2" if detail_levels == 2 else "s1" if detail_stride == 1 else ""
    return f"head c{width} k{classes} d{detail}{form}"


def kind_of(key: str) -> str:
    """The calibration kind of a key (`calibration_kinds()`)."""
    name = key.split(" ", 1)[0]
    if name.endswith((".embed", ".stem")):
        return "embed"
    if name.startswith("s"):
        return parse_choice(name.split(".", 1)[1])[0].calibration_kind
    if name.startswith(("lateral", "fpn")):
        return "edge"
    return name  # ppm, decoder, head


def op_type_of(key: str) -> str:
    """A key's operator type, finer than its calibration kind: `s2.conv3 w64 r8.0` -> `block conv3`,
    `ppm dwsep3x3 c288 p6` -> `edge dwsep3x3`, `head c128 k4 d16l2` -> `head (detail path)`."""
    name, *rest = key.split(" ")
    if "." in name:  # stage components
        part = name.split(".", 1)[1]
        return part if part in ("stem", "embed") else f"block {part}"
    if name in ("decoder", "head"):
        return f"{name} (detail path)" if name == "head" and rest[-1].startswith("d") else name
    return f"edge {rest[0]}"


def arch_keys(space: SearchSpace, arch: Arch, classes: int) -> list[str]:
    """The components an arch is made of (a block repeated twice appears twice)."""
    keys, cin = [], space.in_channels
    for s, st in enumerate(arch.stages, start=1):
        keys.append(embed_key(s, cin, st.width, space.stem))
        keys += [block_key(s, b.choice, st.width, b.ffn_ratio) for b in st.blocks]
        cin = st.width
    dec, widths = arch.decoder, [st.width for st in arch.stages]
    edges = dict(zip(EDGE_NAMES, dec.edges))
    keys += [ppm_key(edges[f"ppm{i + 1}"], widths[3], p) for i, p in enumerate(dec.pool_sizes)]
    keys += [lateral_key(i, edges[f"lateral{i}"], widths[i - 1], dec.width) for i in (1, 2, 3)]
    keys += [fpn_key(i, edges[f"fpn{i}"], dec.width) for i in (1, 2, 3)]
    head = head_key(dec.width, classes, dec.detail, space.decoder.detail_stride, space.decoder.detail_levels)
    keys += [decoder_key(widths[3], dec.width), head]
    return keys


# -- building the components ----------------------------------------------------------------------
class PPMBranch(nn.Module):
    """One PPM branch as `MFAM.pyramid_pooling` runs it, including the addition to the sum."""

    def __init__(self, edge: nn.Module, proj: nn.Module, pool: int):
        super().__init__()
        self.edge, self.proj, self.pool = edge, proj, pool

    def forward(self, f4: Tensor, acc: Tensor) -> Tensor:
        return acc + upsample_like(self.proj(self.edge(adaptive_avg_pool(f4, self.pool, self.pool))), f4)


class DecoderRest(nn.Module):
    """MFAM without its searchable edges: PPM skip + norm, top-down additions, fusion.

    It is `MFAM` itself with no PPM branches and identity laterals / FPN edges, fed with lateral
    outputs that already have the decoder width (NHWC, as the encoder hands them over)."""

    def __init__(self, mfam: MFAM):
        super().__init__()
        self.mfam = mfam

    def forward(self, f1: Tensor, f2: Tensor, f3: Tensor, f4: Tensor) -> Tensor:
        return self.mfam([f1, f2, f3, f4])


def profiling_supernet(space: SearchSpace, classes: int = 2) -> Supernet:
    """A randomly initialised supernet for the space (the weights' values do not change timings);
    `extract(arch)` gives the plain network whose latency the table models."""
    config = SupernetConfig(name=f"latency-{space.name}", search_space=space.name, drop_path=0.0,
                            heads=HeadsConfig(cap=True, cap_hidden=128))  # fmt: skip
    return Supernet(config, num_classes=classes, space=space).eval()


class ComponentFactory:
    """Every component of a search space at one input size and batch, as plain eval-mode modules
    extracted from a supernet of the space (the layers the exported model has)."""

    def __init__(self, space: SearchSpace, input_size: tuple[int, int], batch: int, classes: list[int]):
        self.space, self.input_size, self.batch, self.classes = space, tuple(input_size), batch, list(classes)
        self.res = stage_resolutions(self.input_size, space)
        self._net: Supernet | None = None

    @property
    def net(self) -> Supernet:
        if self._net is None:
            self._net = profiling_supernet(self.space)
        return self._net

    def nhwc(self, level: int, channels: int) -> Tensor:
        h, w = self.res[level]
        return torch.randn(self.batch, h, w, channels)

    def nchw_view(self, level: int, channels: int) -> Tensor:
        """What the next stage or the decoder receives: a permuted view of an NHWC map."""
        return to_nchw(self.nhwc(level, channels))

    def channels_last(self, level: int, channels: int) -> Tensor:
        """A decoder map as convolutions of channels-last views hand it on (memory format matters:
        a 3x3 conv of a channels-last map measured 2x slower than of a contiguous one here)."""
        return self.nchw_view(level, channels).contiguous(memory_format=torch.channels_last)

    def image(self) -> Tensor:
        return torch.randn(self.batch, self.space.in_channels, *self.input_size)

    def components(self) -> Iterator[Component]:
        yield from self._embeds()
        yield from self._blocks()
        yield from self._edges()
        yield from self._ppm()
        yield from self._decoder_and_head()

    def _embeds(self) -> Iterator[Component]:
        ins = [[self.space.in_channels]] + [st.width for st in self.space.stages[:-1]]
        for s, (st, cins) in enumerate(zip(self.space.stages, ins)):
            for cin, width in itertools.product(cins, st.width):
                key = embed_key(s + 1, cin, width, self.space.stem)
                yield Component(key, "embed", self._embed_builder(s, cin, width))

    def _embed_builder(self, s: int, cin: int, width: int):
        def build():
            stage = self.net.encoder.stages[s]
            stage.embed.set_active(cin, width)
            stage.norm.set_active(width)
            module = Stage(stage.embed.extract(), nn.ModuleList(), stage.norm.extract(), 0).eval()
            x = self.image() if s == 0 else self.nchw_view(s - 1, cin)
            return module, (x,)

        return build

    def _blocks(self) -> Iterator[Component]:
        for s, st in enumerate(self.space.stages):
            for choice, width, ratio in itertools.product(st.op_choices, st.width, st.ffn_ratio):
                key = block_key(s + 1, choice, width, ratio)
                yield Component(key, kind_of(key), self._block_builder(s, choice, width, ratio))

    def _block_builder(self, s: int, choice: str, width: int, ratio: float):
        def build():
            block = self.net.encoder.stages[s].blocks[0]
            block.set_active(width, BlockArch.from_choice(choice, ratio))
            return block.extract().eval(), (self.nhwc(s, width),)

        return build

    def _edges(self) -> Iterator[Component]:
        dec = self.space.decoder
        for level in (1, 2, 3):
            st = self.space.stages[level - 1]
            for op, cin, width in itertools.product(dec.edge_ops, st.width, dec.width):
                yield Component(
                    lateral_key(level, op, cin, width), "edge", self._lateral_builder(level, op, cin, width)
                )
            for op, width in itertools.product(dec.edge_ops, dec.width):
                yield Component(fpn_key(level, op, width), "edge", self._fpn_builder(level, op, width))

    def _lateral_builder(self, level: int, op: str, cin: int, width: int):
        def build():
            edge = self.net.decoder.laterals[level - 1]
            edge.set_active(op, cin, width)
            return edge.extract().eval(), (self.nchw_view(level - 1, cin),)

        return build

    def _fpn_builder(self, level: int, op: str, width: int):
        def build():
            edge = self.net.decoder.fpn_edges[level - 1]
            edge.set_active(op, width, width)
            return edge.extract().eval(), (self.channels_last(level - 1, width),)

        return build

    def _ppm(self) -> Iterator[Component]:
        dec = self.space.decoder
        for op, top, pool in itertools.product(dec.edge_ops, self.space.stages[3].width, dec.pool_sizes):
            yield Component(ppm_key(op, top, pool), "ppm", self._ppm_builder(op, top, pool))

    def _ppm_builder(self, op: str, top: int, pool: int):
        def build():
            dec = self.net.decoder
            edge, proj = dec.ppm_edges[0], dec.ppm_projs[0]
            width = max(self.space.decoder.width)
            edge.set_active(op, top, top // 4)
            proj.set_active(top // 4, width)
            module = PPMBranch(edge.extract(), proj.extract(), pool).eval()
            return module, (self.nchw_view(3, top), self.channels_last(3, width))

        return build

    def _decoder_and_head(self) -> Iterator[Component]:
        dec = self.space.decoder
        for top, width in itertools.product(self.space.stages[3].width, dec.width):
            yield Component(decoder_key(top, width), "decoder", self._decoder_builder(top, width))
        for width, classes, detail in itertools.product(dec.width, self.classes, dec.detail):
            key = head_key(width, classes, detail, dec.detail_stride, dec.detail_levels)
            yield Component(key, "head", self._head_builder(width, classes, detail))

    def _decoder_builder(self, top: int, width: int):
        def build():
            dec = self.net.decoder
            dec.ppm_skip.set_active(top, width)
            dec.ppm_norm.set_active(width)
            for proj in dec.fuse:
                proj.set_active(width, width)
            dec.fuse_norm.set_active(width)
            identity = nn.ModuleList(nn.Identity() for _ in range(3))
            mfam = MFAM(nn.ModuleList(), nn.ModuleList(), dec.ppm_skip.extract(), dec.ppm_norm.extract(),
                        identity, nn.ModuleList(nn.Identity() for _ in range(3)),
                        nn.ModuleList(p.extract() for p in dec.fuse), dec.fuse_norm.extract(), [])  # fmt: skip
            inputs = (self.nhwc(0, width), self.nhwc(1, width), self.nhwc(2, width), self.nhwc(3, top))
            return DecoderRest(mfam).eval(), inputs

        return build

    def _head_builder(self, width: int, classes: int, detail: int):
        def build():
            head = SuperSegHead(self.space, classes, 0.0, self.net.config.decoder.gn_channels_per_group)
            head.set_active(width, detail)
            return head.extract().eval(), (self.channels_last(0, width), self.image())

        return build
