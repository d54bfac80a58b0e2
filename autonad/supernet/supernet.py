"""The supernet: the structure modules of `autonad.supernet.modules` filled with elastic layers.

Each ``Super*`` class subclasses a structure module (so forward is shared with the extracted
model) and adds ``set_active(...)`` (sizes from the arch, plain ints) and ``extract()`` (the
structure module rebuilt from its layers' extractions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from autonad.config import to_mapping
from autonad.errors import AutoNADError
from autonad.space import EDGE_NAMES, Arch, BlockArch, DecoderArch, HeadsArch, SearchSpace, StageArch, StageSpace
from autonad.space.operators import edge_operator
from autonad.supernet.config import SupernetConfig
from autonad.supernet.elastic import (
    Elastic,
    ElasticChoice,
    ElasticConv2d,
    ElasticGroupNorm,
    ElasticLayerNorm,
    ElasticLinear,
    Index,
)
from autonad.supernet.modules import (
    MFAM,
    Block,
    CaPHead,
    ConvNormAct,
    ConvStem,
    DetailMerge,
    DetailPath,
    Encoder,
    MixFFN,
    PatchEmbed,
    SegHead,
    SegmentationNet,
    Stage,
    TwoLevelDetailPath,
)
from autonad.supernet.operators import step2_module
from autonad.supernet.sharing import banks, edge_key, mixer_key, projection_key

# MFAM edge op -> (kernel, dilation) of its (point-wise part of the) convolution.


def ffn_hidden(width: int, ratio: float) -> int:
    """MixFFN hidden width: round(C * r)."""
    return int(round(width * ratio))


# -- encoder ----------------------------------------------------------------------------------
class SuperMixFFN(MixFFN, Elastic):
    def __init__(self, max_width: int, max_hidden: int):
        super().__init__(
            ElasticLinear(max_width, max_hidden),
            ElasticConv2d(max_hidden, max_hidden, 3, depthwise=True),
            ElasticLinear(max_hidden, max_width),
        )

    def set_active(self, width: int, hidden: int) -> None:
        self.fc1.set_active(width, hidden)
        self.dwconv.set_active(hidden, hidden)
        self.fc2.set_active(hidden, width)

    def extract(self) -> MixFFN:
        return MixFFN(self.fc1.extract(), self.dwconv.extract(), self.fc2.extract())


class SuperBlock(Block, Elastic):
    """A block slot: banks of Step I/projection and Step II weights keyed by the sharing mode."""

    def __init__(self, stage: StageSpace, head_dim: int, mode: str, drop_path: float):
        width = max(stage.width)
        proj_keys = {c: projection_key(mode, c) for c in stage.op_choices}
        mix_keys = {c: mixer_key(mode, c) for c in stage.op_choices}
        mixer_banks = banks(mix_keys).items()
        super().__init__(
            norm1=ElasticLayerNorm(width),
            qkv=ElasticChoice({k: ElasticLinear(width, 3 * width) for k in banks(proj_keys)}),
            mixer=ElasticChoice({k: step2_module(cs, head_dim, stage.sr_ratio, width) for k, cs in mixer_banks}),
            proj=ElasticChoice({k: ElasticLinear(width, width) for k in banks(proj_keys)}),
            norm2=ElasticLayerNorm(width),
            ffn=SuperMixFFN(width, ffn_hidden(width, max(stage.ffn_ratio))),
            drop_path=drop_path,
        )
        self.proj_keys, self.mix_keys = proj_keys, mix_keys

    def set_active(self, width: int, block: BlockArch) -> None:
        choice = block.choice
        self.norm1.set_active(width)
        self.qkv.set_active(self.proj_keys[choice])
        self.qkv.current.set_active(width, 3 * width)
        self.mixer.set_active(self.mix_keys[choice])
        self.mixer.current.set_active(width, block.kernel)
        self.proj.set_active(self.proj_keys[choice])
        self.proj.current.set_active(width, width)
        self.norm2.set_active(width)
        self.ffn.set_active(width, ffn_hidden(width, block.ffn_ratio))

    def weights_for(self, choice: str) -> tuple[ElasticLinear, ElasticLinear, Elastic]:
        """(q/k/v projection, output projection, Step II module) that serve an op choice."""
        key = self.proj_keys[choice]
        return self.qkv.banks[key], self.proj.banks[key], self.mixer.banks[self.mix_keys[choice]]

    def extract(self) -> Block:
        return Block(
            self.norm1.extract(),
            self.qkv.extract(),
            self.mixer.extract(),
            self.proj.extract(),
            self.norm2.extract(),
            self.ffn.extract(),
            self.drop_path.rate,
        )


class SuperPatchEmbed(PatchEmbed, Elastic):
    def __init__(self, max_in: int, max_width: int, stride: int):
        kernel = 2 * stride - 1  # 7x7/s4 from the image, 3x3/s2 between stages
        super().__init__(ElasticConv2d(max_in, max_width, kernel, stride=stride), ElasticLayerNorm(max_width))

    def set_active(self, in_channels: int, width: int) -> None:
        self.conv.set_active(in_channels, width)
        self.norm.set_active(width)

    def extract(self) -> PatchEmbed:
        return PatchEmbed(self.conv.extract(), self.norm.extract())


class SuperConvStem(ConvStem, Elastic):
    """The conv stem sliced by the stage-1 width; its 1/2-resolution layer is half as wide."""

    def __init__(self, max_in: int, max_width: int, channels_per_group: int):
        half = max_width // 2
        super().__init__(
            ElasticConv2d(max_in, half, 3, stride=2, bias=False),
            ElasticGroupNorm(half, channels_per_group),
            ElasticConv2d(half, max_width, 3, stride=2),
            ElasticLayerNorm(max_width),
        )

    def set_active(self, in_channels: int, width: int) -> None:
        self.conv1.set_active(in_channels, width // 2)
        self.norm1.set_active(width // 2)
        self.conv2.set_active(width // 2, width)
        self.norm.set_active(width)

    def extract(self) -> ConvStem:
        return ConvStem(self.conv1.extract(), self.norm1.extract(), self.conv2.extract(), self.norm.extract())


STEM_GROUP = 8  # channels per GroupNorm group in the conv stem


def _embedding(stem: str, max_in: int, width: int, stride: int) -> Elastic:
    """A stage's embedding: the patch embedding, or the conv stem (stage 1; the space checks its stride)."""
    if stem == "conv":
        return SuperConvStem(max_in, width, STEM_GROUP)
    return SuperPatchEmbed(max_in, width, stride)


class SuperStage(Stage, Elastic):
    def __init__(
        self, stage: StageSpace, max_in: int, stride: int, head_dim: int, mode: str, drop_paths: list[float],
        stem: str = "patch",
    ):  # fmt: skip
        width = max(stage.width)
        blocks = nn.ModuleList(SuperBlock(stage, head_dim, mode, rate) for rate in drop_paths)
        embed = _embedding(stem, max_in, width, stride)
        super().__init__(embed, blocks, ElasticLayerNorm(width), len(blocks))

    def set_active(self, in_channels: int, stage: StageArch) -> None:
        self.embed.set_active(in_channels, stage.width)
        for block, block_arch in zip(self.blocks, stage.blocks):
            block.set_active(stage.width, block_arch)
        self.depth = stage.depth
        self.norm.set_active(stage.width)

    def active_children(self) -> Iterable[nn.Module]:
        return [self.embed, *self.blocks[: self.depth], self.norm]

    def extract(self) -> Stage:
        blocks = nn.ModuleList(block.extract() for block in self.blocks[: self.depth])
        return Stage(self.embed.extract(), blocks, self.norm.extract(), self.depth)


class SuperEncoder(Encoder, Elastic):
    def __init__(self, space: SearchSpace, mode: str, drop_path: float):
        slots = sum(max(st.depth) for st in space.stages)
        rates = iter([drop_path * i / max(slots - 1, 1) for i in range(slots)])
        stages, max_in, prev_stride = [], space.in_channels, 1
        for i, st in enumerate(space.stages):
            drop_paths = [next(rates) for _ in range(max(st.depth))]
            stage_stem = space.stem if i == 0 else "patch"
            stages.append(
                SuperStage(st, max_in, st.stride // prev_stride, space.head_dim, mode, drop_paths, stage_stem)
            )
            max_in, prev_stride = max(st.width), st.stride
        super().__init__(nn.ModuleList(stages))

    def set_active(self, in_channels: int, stages: Sequence[StageArch]) -> None:
        for stage, stage_arch in zip(self.stages, stages):
            stage.set_active(in_channels, stage_arch)
            in_channels = stage_arch.width

    def extract(self) -> Encoder:
        return Encoder(nn.ModuleList(stage.extract() for stage in self.stages))


# -- decoder ----------------------------------------------------------------------------------
class ElasticEdgeConv(Elastic):
    """The convolution of an MFAM edge, one registered `EdgeOperator` of the space's `edge_ops`.

    Ops map to banks by the sharing mode; in a shared bank the stored kernel is the largest op's
    and the others slice it (3x3 centred, 1x1 centre, dilated 3x3 every other tap). A depthwise-
    separable op (dwsep3x3) runs a depthwise conv (own weights, one per space, at the largest such
    kernel) and then the bank's weights at its kernel (1x1: the centre).
    """

    def __init__(self, max_in: int, max_out: int, ops: Sequence[str], mode: str):
        super().__init__()
        self.keys = {op: edge_key(mode, op) for op in ops}
        self.convs = nn.ModuleDict(
            {
                key: ElasticConv2d(max_in, max_out, max(edge_operator(op).kernel for op in served), bias=False)
                for key, served in banks(self.keys).items()
            }
        )
        dw = max((edge_operator(op).depthwise for op in ops), default=0)
        self.depthwise = ElasticConv2d(max_in, max_in, dw, bias=False, depthwise=True) if dw else None
        self.op = ops[0]
        self.separable = bool(edge_operator(self.op).depthwise)

    def set_active(self, op: str, in_channels: int, out_channels: int) -> None:
        spec = edge_operator(op)
        self.convs[self.keys[op]].set_active(in_channels, out_channels, spec.kernel, spec.dilation)
        self.separable = bool(spec.depthwise)
        if self.separable:
            self.depthwise.set_active(in_channels, in_channels, spec.depthwise)
        self.op = op

    def active_children(self) -> Iterable[nn.Module]:
        conv = self.convs[self.keys[self.op]]
        return [self.depthwise, conv] if self.separable else [conv]

    def forward(self, x: Tensor) -> Tensor:
        if self.separable:
            x = self.depthwise(x)
        return self.convs[self.keys[self.op]](x)

    def extract(self) -> nn.Module:
        layers = [layer.extract() for layer in self.active_children()]
        return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class SuperEdge(ConvNormAct, Elastic):
    def __init__(self, max_in: int, max_out: int, ops: Sequence[str], mode: str, channels_per_group: int):
        super().__init__(ElasticEdgeConv(max_in, max_out, ops, mode), ElasticGroupNorm(max_out, channels_per_group))

    def set_active(self, op: str, in_channels: int, out_channels: int) -> None:
        self.conv.set_active(op, in_channels, out_channels)
        self.norm.set_active(out_channels)

    def extract(self) -> ConvNormAct:
        return ConvNormAct(self.conv.extract(), self.norm.extract())


class SuperMFAM(MFAM, Elastic):
    def __init__(self, space: SearchSpace, mode: str, channels_per_group: int):
        dec = space.decoder
        widths = [max(st.width) for st in space.stages]
        top, width = widths[3], max(dec.width)
        branch = top // 4  # PPM branch width (PSPNet: C4 / 4)

        def edge(cin: int, cout: int) -> SuperEdge:
            return SuperEdge(cin, cout, dec.edge_ops, mode, channels_per_group)

        def conv1x1(cin: int, cout: int) -> ElasticConv2d:
            return ElasticConv2d(cin, cout, 1, bias=False)  # GroupNorm follows the sum

        super().__init__(
            ppm_edges=nn.ModuleList(edge(top, branch) for _ in range(dec.pool_branches)),
            ppm_projs=nn.ModuleList(conv1x1(branch, width) for _ in range(dec.pool_branches)),
            ppm_skip=conv1x1(top, width),
            ppm_norm=ElasticGroupNorm(width, channels_per_group),
            laterals=nn.ModuleList(edge(w, width) for w in widths[:3]),
            fpn_edges=nn.ModuleList(edge(width, width) for _ in range(3)),
            fuse=nn.ModuleList(conv1x1(width, width) for _ in range(4)),
            fuse_norm=ElasticGroupNorm(width, channels_per_group),
            pool_sizes=list(dec.pool_combos[-1]),
        )

    def set_active(self, widths: Sequence[int], dec: DecoderArch) -> None:
        edges = dict(zip(EDGE_NAMES, dec.edges))
        top, width = widths[3], dec.width
        for i, (edge, proj) in enumerate(zip(self.ppm_edges, self.ppm_projs), start=1):
            edge.set_active(edges[f"ppm{i}"], top, top // 4)
            proj.set_active(top // 4, width)
        self.ppm_skip.set_active(top, width)
        self.ppm_norm.set_active(width)
        for i, (lateral, fpn) in enumerate(zip(self.laterals, self.fpn_edges), start=1):
            lateral.set_active(edges[f"lateral{i}"], widths[i - 1], width)
            fpn.set_active(edges[f"fpn{i}"], width, width)
        for proj in self.fuse:
            proj.set_active(width, width)
        self.fuse_norm.set_active(width)
        self.pool_sizes = list(dec.pool_sizes)

    def extract(self) -> MFAM:
        def plain(layers: nn.ModuleList) -> nn.ModuleList:
            return nn.ModuleList(layer.extract() for layer in layers)

        return MFAM(
            plain(self.ppm_edges),
            plain(self.ppm_projs),
            self.ppm_skip.extract(),
            self.ppm_norm.extract(),
            plain(self.laterals),
            plain(self.fpn_edges),
            plain(self.fuse),
            self.fuse_norm.extract(),
            list(self.pool_sizes),
        )


# -- heads ------------------------------------------------------------------------------------
def _small_classifier(max_in: int, num_classes: int) -> ElasticConv2d:
    """A 1x1 class-score conv started near zero: fan-out init of a 1x1 conv with few outputs (std ~0.7)
    gives huge initial logits that collapse training onto the background."""
    conv = ElasticConv2d(max_in, num_classes, 1)
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return conv


def _elastic_cna(cin: int, cout: int, channels_per_group: int, stride: int = 1) -> ConvNormAct:
    conv = ElasticConv2d(cin, cout, 3, stride=stride, bias=False)
    return ConvNormAct(conv, ElasticGroupNorm(cout, channels_per_group))


def _set_cna(layer: ConvNormAct, cin: int, cout: int) -> None:
    layer.conv.set_active(cin, cout)
    layer.norm.set_active(cout)


def _plain_cna(layer: ConvNormAct) -> ConvNormAct:
    return ConvNormAct(layer.conv.extract(), layer.norm.extract())


class SuperDetailPath(DetailPath, Elastic):
    """`DetailPath` sliced by the decoder width (its projection's input) and the detail width; its first
    conv has the space's `detail_stride` (2: the path runs at 1/2 resolution, 1: at full resolution)."""

    def __init__(self, in_channels: int, max_width: int, max_detail: int, num_classes: int, channels_per_group: int,
                 stride: int = 2):  # fmt: skip
        super().__init__(
            _elastic_cna(in_channels, max_detail, channels_per_group, stride),
            _elastic_cna(max_detail, max_detail, channels_per_group),
            ElasticConv2d(max_width, max_detail, 1, bias=False),
            ElasticConv2d(max_detail, max_detail, 3, bias=False),
            ElasticGroupNorm(max_detail, channels_per_group),
            _small_classifier(max_detail, num_classes),
        )
        self.in_channels, self.num_classes = in_channels, num_classes

    def set_active(self, width: int, detail: int) -> None:
        _set_cna(self.down, self.in_channels, detail)
        _set_cna(self.refine, detail, detail)
        self.proj.set_active(width, detail)
        self.mix.set_active(detail, detail)
        self.norm.set_active(detail)
        self.classifier.set_active(detail, self.num_classes)

    def extract(self) -> DetailPath:
        return DetailPath(_plain_cna(self.down), _plain_cna(self.refine), self.proj.extract(), self.mix.extract(),
                          self.norm.extract(), self.classifier.extract())  # fmt: skip


class SuperDetailMerge(DetailMerge, Elastic):
    def __init__(self, max_coarser: int, max_width: int, channels_per_group: int):
        super().__init__(
            ElasticConv2d(max_coarser, max_width, 1, bias=False),
            ElasticConv2d(max_width, max_width, 3, bias=False),
            ElasticGroupNorm(max_width, channels_per_group),
            _elastic_cna(max_width, max_width, channels_per_group),
        )

    def set_active(self, coarser: int, width: int) -> None:
        self.proj.set_active(coarser, width)
        self.mix.set_active(width, width)
        self.norm.set_active(width)
        _set_cna(self.refine, width, width)

    def extract(self) -> DetailMerge:
        return DetailMerge(self.proj.extract(), self.mix.extract(), self.norm.extract(), _plain_cna(self.refine))


class SuperTwoLevelDetailPath(TwoLevelDetailPath, Elastic):
    """`TwoLevelDetailPath` sliced by the decoder width and the detail width d (full resolution; the
    1/2-resolution level is 2d wide)."""

    def __init__(self, in_channels: int, max_width: int, max_detail: int, num_classes: int, channels_per_group: int):
        d, d2, cpg = max_detail, 2 * max_detail, channels_per_group
        super().__init__(
            nn.Sequential(_elastic_cna(in_channels, d, cpg), _elastic_cna(d, d, cpg)),
            nn.Sequential(_elastic_cna(d, d2, cpg, stride=2), _elastic_cna(d2, d2, cpg)),
            SuperDetailMerge(max_width, d2, cpg),
            SuperDetailMerge(d2, d, cpg),
            _small_classifier(d, num_classes),
        )
        self.in_channels, self.num_classes = in_channels, num_classes

    def set_active(self, width: int, detail: int) -> None:
        _set_cna(self.full_res[0], self.in_channels, detail)
        _set_cna(self.full_res[1], detail, detail)
        _set_cna(self.half_res[0], detail, 2 * detail)
        _set_cna(self.half_res[1], 2 * detail, 2 * detail)
        self.merge_half.set_active(width, 2 * detail)
        self.merge_full.set_active(2 * detail, detail)
        self.classifier.set_active(detail, self.num_classes)

    def extract(self) -> TwoLevelDetailPath:
        full_res, half_res = (nn.Sequential(*map(_plain_cna, level)) for level in (self.full_res, self.half_res))
        return TwoLevelDetailPath(full_res, half_res, self.merge_half.extract(), self.merge_full.extract(),
                                  self.classifier.extract())  # fmt: skip


class SuperSegHead(SegHead, Elastic):
    """The segmentation head; with a detail path when the space offers detail widths above 0 (an
    arch with detail 0 computes and extracts the plain head)."""

    def __init__(self, space: SearchSpace, num_classes: int, dropout: float, channels_per_group: int):
        dec = space.decoder
        detail = None
        if max(dec.detail) > 0 and dec.detail_levels == 2:
            detail = SuperTwoLevelDetailPath(
                space.in_channels, max(dec.width), max(dec.detail), num_classes, channels_per_group
            )
        elif max(dec.detail) > 0:
            detail = SuperDetailPath(
                space.in_channels, max(dec.width), max(dec.detail), num_classes, channels_per_group, dec.detail_stride
            )
        super().__init__(_small_classifier(max(dec.width), num_classes), dropout, detail)
        self.num_classes = num_classes

    def set_active(self, width: int, detail: int = 0) -> None:
        self.classifier.set_active(width, self.num_classes)
        self.detail_on = detail > 0
        if self.detail_on:
            self.detail.set_active(width, detail)

    def active_children(self) -> Iterable[nn.Module]:
        return [self.dropout, self.classifier, *([self.detail] if self.detail_on else [])]

    def extract(self) -> SegHead:
        detail = self.detail.extract() if self.detail_on else None
        return SegHead(self.classifier.extract(), self.dropout.p, detail)


class SuperCaPHead(CaPHead, Elastic):
    def __init__(self, max_width: int, hidden: int, outputs: int):
        super().__init__(ElasticLinear(max_width, hidden), ElasticLinear(hidden, outputs))

    def set_active(self, width: int) -> None:
        self.fc1.set_active(width, self.fc1.max_out)

    def extract(self) -> CaPHead:
        return CaPHead(self.fc1.extract(), self.fc2.extract())


# -- the supernet -----------------------------------------------------------------------------
class Supernet(SegmentationNet, Elastic):
    """Weight-sharing supernet over a search space (SPEC section 4).

    ``set_arch(arch)`` activates a subnet (validated against the space; only ints change),
    ``forward(x)`` runs it (same outputs as `SegmentationNet`), ``extract(arch)`` returns it as a
    standalone `SegmentationNet` of plain torch layers. It starts at the space's largest arch.
    """

    def __init__(self, config: SupernetConfig, num_classes: int, space: SearchSpace | None = None):
        space = space if space is not None else SearchSpace.load(config.search_space)
        _check_compatible(space, config, num_classes)
        mode = config.weight_sharing
        top = max(space.stages[3].width)
        cap = None
        if config.heads.cap:
            outputs = 1 + (num_classes - 1 if config.heads.multilabel else 0)
            cap = SuperCaPHead(top, config.heads.cap_hidden, outputs)
        super().__init__(
            encoder=SuperEncoder(space, mode, config.drop_path),
            decoder=SuperMFAM(space, mode, config.decoder.gn_channels_per_group),
            seg_head=SuperSegHead(space, num_classes, config.decoder.dropout, config.decoder.gn_channels_per_group),
            cap_head=cap,
            metadata={},
        )
        self.config, self.space, self.num_classes = config, space, num_classes
        # the whole space as JSON, in every extracted model's metadata: a state-dict export rebuilds the
        # network from it on a machine that lacks the user's space file (or has another version of it)
        self.space_definition = json.dumps(to_mapping(space), sort_keys=True, separators=(",", ":"))
        self.set_arch(
            space.largest(heads=HeadsArch(cap=config.heads.cap, classes=config.heads.cap and config.heads.multilabel))
        )

    def set_arch(self, arch: Arch) -> None:
        self.space.validate(arch)
        if arch.heads.cap_head and self.cap_head is None:
            raise AutoNADError(f"arch turns on the CaP head but supernet '{self.config.name}' has none (heads.cap)")
        if arch.heads.classes and not self.config.heads.multilabel:
            raise AutoNADError(f"arch turns on CaP class logits but supernet '{self.config.name}' has none "
                               "(heads.multilabel)")  # fmt: skip
        widths = [st.width for st in arch.stages]
        self.encoder.set_active(self.space.in_channels, arch.stages)
        self.decoder.set_active(widths, arch.decoder)
        self.seg_head.set_active(arch.decoder.width, arch.decoder.detail)
        if self.cap_head is not None:
            self.cap_head.set_active(widths[3])
        self.set_heads(arch.heads)
        self.arch = arch

    def active_children(self) -> Iterable[nn.Module]:
        heads = [self.cap_head] if self.arch.heads.cap_head else []
        return [self.encoder, self.decoder, self.seg_head, *heads]

    def extract(self, arch: Arch | None = None) -> SegmentationNet:
        """The active subnet (after ``set_arch(arch)`` if given) as a standalone model of plain
        torch layers with the sliced weights copied in, in the supernet's train/eval mode."""
        if arch is not None:
            self.set_arch(arch)
        model = SegmentationNet(
            self.encoder.extract(),
            self.decoder.extract(),
            self.seg_head.extract(),
            self.cap_head.extract() if self.arch.heads.cap_head else None,
            metadata=self.metadata_for(self.arch),
            heads=self.arch.heads,
        )
        param = next(self.parameters())
        return model.to(device=param.device, dtype=param.dtype).train(self.training)

    def class_specific_keys(self) -> list[str]:
        """State-dict keys whose weights mean something only for this class list: the segmentation
        classifier and, with a multi-label CaP head, its output layer (retraining on another product
        line gives these new heads and keeps every other weight)."""
        prefixes = ["seg_head.classifier.", "seg_head.detail.classifier."]
        prefixes += ["cap_head.fc2."] if self.config.heads.multilabel else []
        return [k for k in self.state_dict() if k.startswith(tuple(prefixes))]

    def metadata_for(self, arch: Arch) -> dict[str, str]:
        outputs = ["seg"] + (["cap"] if arch.heads.cap else []) + (["cls"] if arch.heads.classes else [])
        return {
            "arch": arch.to_json(),
            "arch_hash": arch.hash,
            "search_space": self.space.name,
            "search_space_def": self.space_definition,
            "supernet": self.config.name,
            "weight_sharing": self.config.weight_sharing,
            "num_classes": str(self.num_classes),
            "in_channels": str(self.space.in_channels),
            "outputs": ",".join(outputs),
        }

    def active_parameters(self) -> dict[str, Index]:
        """Parameter name -> index of the region the active arch computes with. Parameters not
        listed (inactive blocks, banks, ops) are not used at all."""
        names: dict[int, str] = {}
        for name, param in self.named_parameters():
            names.setdefault(id(param), name)
        used: dict[str, Index] = {}

        def visit(module: nn.Module) -> None:
            if isinstance(module, Elastic):
                for pname, index in module.active_slices().items():
                    used[names[id(getattr(module, pname))]] = index
                children = module.active_children()
            else:
                children = module.children()
            for child in children:
                visit(child)

        visit(self)
        return used


def build_subnet(
    config: SupernetConfig, num_classes: int, arch: Arch, space: SearchSpace | None = None, device: str = "cpu"
) -> SegmentationNet:
    """The standalone network of `arch` with uninitialised weights, to load an exported or retrained
    subnet's state dict into. It is the supernet's own extraction (one builder, no parallel
    construction), run on the meta device: no full-size supernet weights are allocated or initialised,
    only the subnet's."""
    with torch.device("meta"):
        net = Supernet(config, num_classes, space).extract(arch)
    return net.to_empty(device=device)


def _check_compatible(space: SearchSpace, config: SupernetConfig, num_classes: int) -> None:
    """Reject spaces the supernet's fixed structure cannot serve, with one-line errors."""
    where = f"supernet '{config.name}' (search space '{space.name}')"
    if num_classes < 2:
        raise AutoNADError(f"{where}: needs at least 2 classes (background + defect), got {num_classes}")
    if space.decoder.pool_branches != 4:
        raise AutoNADError(f"{where}: MFAM has 4 PPM edges, the space has {space.decoder.pool_branches} pool branches")
    strides = [1] + [st.stride for st in space.stages]
    for i, st in enumerate(space.stages):
        if st.stride % strides[i] or st.stride // strides[i] < 2:
            raise AutoNADError(f"{where}: stage {i + 1} stride {st.stride} is not a multiple of {strides[i]}")
    if any(w % 4 for w in space.stages[3].width):
        raise AutoNADError(f"{where}: stage-4 widths must be multiples of 4 (PPM branches are C4 / 4 wide)")
    cpg = config.decoder.gn_channels_per_group
    widths = [*space.decoder.width, *(w // 4 for w in space.stages[3].width), *filter(None, space.decoder.detail)]
    bad = [w for w in widths if w % cpg]
    if bad:
        raise AutoNADError(
            f"{where}: decoder.gn_channels_per_group {cpg} must divide every decoder width, every "
            f"PPM branch width (stage-4 width / 4) and every detail width; {bad[0]} is not divisible"
        )
