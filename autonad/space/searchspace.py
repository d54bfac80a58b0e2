"""Search spaces (YAML in `search_spaces/`) and the fixed-length genome of an arch.

A genome is a list of choice indices, one per gene. Every stage has `max_depth` block
slots; slots beyond the active depth keep their genes, so a mutation that later raises
the depth brings back the blocks that were there (paper Algorithm 1, variable depth).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from autonad import resources
from autonad.config import from_mapping, load_yaml
from autonad.errors import AutoNADError
from autonad.space.arch import EDGE_NAMES, Arch, BlockArch, DecoderArch, HeadsArch, StageArch
from autonad.space.operators import block_operator, cost_order, edge_operator, edge_operators, is_edge_operator

RANGE_KEYS = ("depth", "width", "ffn_ratio", "pool_sizes")


@dataclass(frozen=True)
class StageSpace:
    stride: int
    depth: list[int]
    width: list[int]
    ffn_ratio: list[float]
    ops: list[str]
    kernels: list[int] = field(default_factory=lambda: [3, 5])
    sr_ratio: int = 1  # spatial reduction of attention keys/values in this stage

    def __post_init__(self):
        for name in ("depth", "width", "ffn_ratio", "ops"):
            values = getattr(self, name)
            if not values:
                raise AutoNADError(f"{name}: needs at least one choice")
            if len(set(values)) != len(values):
                raise AutoNADError(f"{name}: choices repeat")
        for op in map(block_operator, self.ops):
            bad = [w for w in self.width if w % op.width_multiple]
            if bad:
                raise AutoNADError(f"width: {bad[0]} is not a multiple of {op.width_multiple} (the '{op.name}' op)")
        if min(self.depth) < 1:
            raise AutoNADError("depth: must be at least 1")

    @property
    def op_choices(self) -> tuple[str, ...]:
        """Operator tokens of this stage: an operator with kernel sizes gives one token per size."""
        return tuple(token for op in self.ops for token in block_operator(op).choices(self.kernels))


@dataclass(frozen=True)
class DecoderSpace:
    width: list[int]
    edge_ops: list[str] = field(default_factory=lambda: [op.name for op in edge_operators()])
    pool_sizes: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    pool_branches: int = 4
    # widths of the head's detail path (0: none); beyond paper Table I, which has [0]
    detail: list[int] = field(default_factory=lambda: [0])
    detail_stride: int = 2  # the detail path's resolution: 2 = 1/2 of the input, 1 = full resolution
    # 1: one level at `detail_stride`; 2: a U-Net-like path with a full-resolution level (width d) and
    # a 1/2-resolution level (2d), each merged with the coarser map and refined (needs detail_stride 1)
    detail_levels: int = 1

    def __post_init__(self):
        if self.detail_stride not in (1, 2):
            raise AutoNADError(f"detail_stride: {self.detail_stride} is not 1 (full resolution) or 2 (half)")
        if self.detail_levels not in (1, 2):
            raise AutoNADError(f"detail_levels: {self.detail_levels} is not 1 or 2 (full and 1/2 resolution)")
        if self.detail_levels == 2 and self.detail_stride != 1:
            raise AutoNADError("detail_levels: 2 starts at full resolution: it needs detail_stride: 1")
        if not self.detail or any(d < 0 for d in self.detail) or len(set(self.detail)) < len(self.detail):
            raise AutoNADError(f"detail: {self.detail} is not a list of distinct widths >= 0 (0: no detail path)")
        for op in self.edge_ops:
            edge_operator(op, "edge_ops")
        if len(set(self.pool_sizes)) < self.pool_branches:
            raise AutoNADError(f"pool_sizes: need at least {self.pool_branches} distinct sizes")

    @property
    def pool_combos(self) -> tuple[tuple[int, ...], ...]:
        """Every set of `pool_branches` distinct pool sizes, ascending."""
        return tuple(itertools.combinations(sorted(self.pool_sizes), self.pool_branches))


@dataclass(frozen=True)
class Gene:
    name: str
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    stages: list[StageSpace]
    decoder: DecoderSpace
    head_dim: int = 32
    in_channels: int = 3
    # stage-1 embedding: "patch" (the paper's 7x7/s4 conv + LN) or "conv" (two 3x3/s2 convs, `ConvStem`);
    # beyond paper Table I, which has the patch embedding
    stem: Literal["patch", "conv"] = "patch"
    description: str = ""

    def __post_init__(self):
        if len(self.stages) != 4:
            raise AutoNADError(f"stages: the MFAM decoder needs exactly 4 stages, got {len(self.stages)}")
        if self.stem == "conv" and self.stages[0].stride != 4:
            raise AutoNADError(f"stem: the conv stem replaces a stride-4 patch embedding, not {self.stages[0].stride}")
        for i, st in enumerate(self.stages):
            bad = [w for w in st.width if w % self.head_dim]
            if bad:
                raise AutoNADError(f"stages[{i}].width: {bad[0]} is not a multiple of head_dim {self.head_dim}")

    # -- loading ------------------------------------------------------------------
    @staticmethod
    def load(name_or_path: str | Path) -> SearchSpace:
        path = resources.resolve("search_spaces", name_or_path)
        return SearchSpace.from_dict(load_yaml(path), str(path))

    @staticmethod
    def from_dict(data: Any, where: str = "search space") -> SearchSpace:
        return from_mapping(SearchSpace, _expand_ranges(data, where), where)

    # -- genome -------------------------------------------------------------------
    @cached_property
    def genes(self) -> tuple[Gene, ...]:
        genes: list[Gene] = []
        for s, st in enumerate(self.stages, start=1):
            genes += [Gene(f"s{s}.depth", tuple(st.depth)), Gene(f"s{s}.width", tuple(st.width))]
            for b in range(max(st.depth)):
                genes.append(Gene(f"s{s}.b{b + 1}.op", st.op_choices))
                genes.append(Gene(f"s{s}.b{b + 1}.ffn", tuple(st.ffn_ratio)))
        genes.append(Gene("dec.width", tuple(self.decoder.width)))
        genes.append(Gene("dec.pools", self.decoder.pool_combos))
        genes += [Gene(f"dec.{e}", tuple(self.decoder.edge_ops)) for e in EDGE_NAMES]
        if len(self.decoder.detail) > 1:  # a gene only where there is a choice: Table I genomes keep their length
            genes.append(Gene("dec.detail", tuple(self.decoder.detail)))
        return tuple(genes)

    @cached_property
    def gene_index(self) -> dict[str, int]:
        return {g.name: i for i, g in enumerate(self.genes)}

    def decode(self, genome: Sequence[int], heads: HeadsArch = HeadsArch()) -> Arch:
        if len(genome) != len(self.genes):
            raise AutoNADError(f"genome has {len(genome)} genes, search space '{self.name}' needs {len(self.genes)}")
        value = {g.name: g.choices[i] for g, i in zip(self.genes, genome)}
        stages = []
        for s in range(1, len(self.stages) + 1):
            blocks = tuple(
                BlockArch.from_choice(value[f"s{s}.b{b}.op"], value[f"s{s}.b{b}.ffn"])
                for b in range(1, value[f"s{s}.depth"] + 1)
            )
            stages.append(StageArch(width=value[f"s{s}.width"], blocks=blocks))
        decoder = DecoderArch(
            width=value["dec.width"],
            pool_sizes=tuple(value["dec.pools"]),
            edges=tuple(value[f"dec.{e}"] for e in EDGE_NAMES),
            detail=value.get("dec.detail", self.decoder.detail[0]),
        )
        return Arch(stages=tuple(stages), decoder=decoder, heads=heads)

    def encode(self, arch: Arch, base: Sequence[int] | None = None) -> list[int]:
        """Genome of `arch`; inactive block slots come from `base` (else first choice)."""
        self.validate(arch)
        genome = list(base) if base is not None else [0] * len(self.genes)
        idx = self.gene_index

        def put(name: str, value: Any) -> None:
            choices = self.genes[idx[name]].choices
            genome[idx[name]] = next(i for i, c in enumerate(choices) if _same(c, value))

        for s, st in enumerate(arch.stages, start=1):
            put(f"s{s}.depth", st.depth)
            put(f"s{s}.width", st.width)
            for b, blk in enumerate(st.blocks, start=1):
                put(f"s{s}.b{b}.op", blk.choice)
                put(f"s{s}.b{b}.ffn", blk.ffn_ratio)
        put("dec.width", arch.decoder.width)
        put("dec.pools", tuple(arch.decoder.pool_sizes))
        for e, op in zip(EDGE_NAMES, arch.decoder.edges):
            put(f"dec.{e}", op)
        if "dec.detail" in idx:
            put("dec.detail", arch.decoder.detail)
        return genome

    # -- validation ---------------------------------------------------------------
    def validate(self, arch: Arch, where: str = "arch") -> None:
        """Raise a one-line AutoNADError if `arch` is not a member of this space."""
        if len(arch.stages) != len(self.stages):
            raise AutoNADError(
                f"{where}: has {len(arch.stages)} stages, search space '{self.name}' has {len(self.stages)}"
            )
        for s, (st, sp) in enumerate(zip(arch.stages, self.stages)):
            at = f"{where}.stages[{s}]"
            _check(st.depth, sp.depth, f"{at}.depth", self.name)
            _check(st.width, sp.width, f"{at}.width", self.name)
            for b, blk in enumerate(st.blocks):
                _check(blk.choice, sp.op_choices, f"{at}.blocks[{b}].op", self.name)
                _check(blk.ffn_ratio, sp.ffn_ratio, f"{at}.blocks[{b}].ffn_ratio", self.name)
        dec = arch.decoder
        _check(dec.width, self.decoder.width, f"{where}.decoder.width", self.name)
        pools = tuple(dec.pool_sizes)
        if pools not in self.decoder.pool_combos:
            raise AutoNADError(
                f"{where}.decoder.pool_sizes: {list(pools)} is not {self.decoder.pool_branches} distinct ascending "
                f"sizes from {self.decoder.pool_sizes} (search space '{self.name}')"
            )
        for e, op in zip(EDGE_NAMES, dec.edges):
            _check(op, self.decoder.edge_ops, f"{where}.decoder.edges.{e}", self.name)
        _check(dec.detail, self.decoder.detail, f"{where}.decoder.detail", self.name)

    def contains(self, arch: Arch) -> bool:
        try:
            self.validate(arch)
        except AutoNADError:
            return False
        return True

    # -- sampling -----------------------------------------------------------------
    def sample_genome(self, rng: random.Random, gene_weights: Mapping[str, Sequence[float]] | None = None) -> list[int]:
        """Random genome; `gene_weights` (e.g. a latency prior) biases named genes."""
        genome = []
        for g in self.genes:
            weights = (gene_weights or {}).get(g.name)
            if weights is None:
                genome.append(rng.randrange(len(g.choices)))
            else:
                genome.append(rng.choices(range(len(g.choices)), weights=weights)[0])
        return genome

    def sample(
        self,
        rng: random.Random,
        gene_weights: Mapping[str, Sequence[float]] | None = None,
        heads: HeadsArch = HeadsArch(),
    ) -> Arch:
        return self.decode(self.sample_genome(rng, gene_weights), heads)

    def largest(self, rng: random.Random | None = None, heads: HeadsArch = HeadsArch()) -> Arch:
        """Deepest, widest arch with the largest decoder; ops random if `rng`, else the heaviest."""
        return self._extreme(max, rng, heads)

    def smallest(self, rng: random.Random | None = None, heads: HeadsArch = HeadsArch()) -> Arch:
        return self._extreme(min, rng, heads)

    def _extreme(self, pick, rng: random.Random | None, heads: HeadsArch) -> Arch:
        genome = []
        for g in self.genes:
            kind = g.name.rsplit(".", 1)[-1]
            if kind == "op" or (g.name.startswith("dec.") and g.name[4:] in EDGE_NAMES):
                if rng is not None:
                    genome.append(rng.randrange(len(g.choices)))
                else:  # choices are listed light to heavy only for edges; ops use a fixed order
                    genome.append(_heaviest(g.choices) if pick is max else _lightest(g.choices))
            else:
                values = list(g.choices)
                genome.append(values.index(pick(values)))
        return self.decode(genome, heads)

    # -- size ---------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of distinct archs in the space."""
        total = 1
        for st in self.stages:
            per_block = len(st.op_choices) * len(st.ffn_ratio)
            total *= len(st.width) * sum(per_block**d for d in st.depth)
        dec = self.decoder
        return total * len(dec.width) * len(dec.pool_combos) * len(dec.edge_ops) ** len(EDGE_NAMES) * len(dec.detail)

    def describe(self) -> str:
        return f"{self.name}: {len(self.genes)} genes, about 10^{math.log10(self.size):.1f} archs"


def _op_weight(choice: str) -> tuple[int, int]:
    """Light to heavy, for the deterministic largest/smallest archs: an MFAM edge op by its rank, a
    block operator choice by `operators.cost_order`."""
    return (edge_operator(choice).cost_rank, 0) if is_edge_operator(choice) else cost_order(choice)


def _heaviest(choices: Sequence[str]) -> int:
    return max(range(len(choices)), key=lambda i: _op_weight(choices[i]))


def _lightest(choices: Sequence[str]) -> int:
    return min(range(len(choices)), key=lambda i: _op_weight(choices[i]))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-9)
    return a == b


def _check(value: Any, choices: Sequence[Any], where: str, space: str) -> None:
    if not any(_same(value, c) for c in choices):
        shown = ", ".join(str(c) for c in choices)
        raise AutoNADError(f"{where}: {value} is not in search space '{space}' (choices: {shown})")


def _expand_ranges(data: Any, where: str) -> Any:
    """Turn `{min, max, step}` mappings (paper Table I notation) into explicit lists."""
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key in RANGE_KEYS and isinstance(value, dict):
            out[key] = _range(value, f"{where}.{key}")
        elif isinstance(value, dict):
            out[key] = _expand_ranges(value, f"{where}.{key}")
        elif isinstance(value, list):
            out[key] = [_expand_ranges(v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
        else:
            out[key] = value
    return out


def _range(spec: dict, where: str) -> list:
    unknown = set(spec) - {"min", "max", "step"}
    if unknown or not {"min", "max"} <= set(spec):
        raise AutoNADError(f"{where}: a range is {{min, max, step}}")
    lo, hi, step = spec["min"], spec["max"], spec.get("step", 1)
    if step <= 0 or hi < lo:
        raise AutoNADError(f"{where}: empty range {spec}")
    n = int(round((hi - lo) / step)) + 1
    values = [lo + i * step for i in range(n)]
    if all(isinstance(v, int) for v in (lo, hi, step)):
        return [int(v) for v in values]
    return [round(float(v), 6) for v in values]
