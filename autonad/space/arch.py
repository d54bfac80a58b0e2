"""The architecture encoding: a plain, readable description of one subnet.

An `Arch` round-trips exactly through YAML/JSON (`to_dict`/`from_dict`), has a stable
hash of its canonical JSON, and is validated against a `SearchSpace` separately
(`SearchSpace.validate`), so the encoding itself knows nothing about choices.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autonad.config import load_yaml, write_text_atomic
from autonad.errors import AutoNADError
from autonad.space.operators import block_operator, block_operators, edge_operator, parse_choice

# MFAM's ten searchable edges: PPM branch convs, lateral convs of stages 1-3, FPN output convs.
EDGE_NAMES = (
    "ppm1", "ppm2", "ppm3", "ppm4",
    "lateral1", "lateral2", "lateral3",
    "fpn1", "fpn2", "fpn3",
)  # fmt: skip


@dataclass(frozen=True)
class BlockArch:
    op: str
    ffn_ratio: float
    kernel: int | None = None  # operators with kernel sizes only (`BlockOperator.kernels`)

    def __post_init__(self):
        if block_operator(self.op).kernels != (self.kernel is not None):
            with_kernels = "/".join(op.name for op in block_operators() if op.kernels)
            raise AutoNADError(f"block op '{self.op}': a kernel is given for {with_kernels} blocks and only for them")

    @property
    def choice(self) -> str:
        """Operator choice as one token ('transformer', 'conv3', 'conv5', 'mlp')."""
        return f"{self.op}{self.kernel}" if self.kernel is not None else self.op

    @staticmethod
    def from_choice(choice: str, ffn_ratio: float) -> BlockArch:
        op, kernel = parse_choice(choice)
        return BlockArch(op.name, ffn_ratio, kernel)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op}
        if self.kernel is not None:
            d["kernel"] = self.kernel
        d["ffn_ratio"] = self.ffn_ratio
        return d


@dataclass(frozen=True)
class StageArch:
    width: int
    blocks: tuple[BlockArch, ...]

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "width": self.width, "blocks": [b.to_dict() for b in self.blocks]}


@dataclass(frozen=True)
class DecoderArch:
    width: int
    pool_sizes: tuple[int, ...]
    edges: tuple[str, ...]  # one op per EDGE_NAMES entry, in that order
    detail: int = 0  # width of the segmentation head's detail path (0: none, the paper's head)

    def __post_init__(self):
        if self.detail < 0:
            raise AutoNADError(f"decoder detail: {self.detail} is negative (0 turns the detail path off)")
        if len(self.edges) != len(EDGE_NAMES):
            raise AutoNADError(f"decoder needs {len(EDGE_NAMES)} edges, got {len(self.edges)}")
        for name, op in zip(EDGE_NAMES, self.edges):
            edge_operator(op, f"decoder edge {name}")

    @staticmethod
    def upernet(width: int) -> DecoderArch:
        """The fixed UPerNet decoder (Xiao et al. 2018) as one MFAM choice, for the paper's Table VI
        ablation: PPM with pool sizes 1, 2, 3, 6 and 1x1 branch convs, 1x1 laterals, 3x3 FPN convs."""
        return DecoderArch(width, (1, 2, 3, 6), ("conv1x1",) * 7 + ("conv3x3",) * 3)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "width": self.width,
            "pool_sizes": list(self.pool_sizes),
            "edges": dict(zip(EDGE_NAMES, self.edges)),
        }
        if self.detail:  # absent when off, so archs of spaces without a detail path keep their encoding
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class HeadsArch:
    """The Classifier-as-Plugin outputs an arch turns on (paper 000's head, paper 004's two stages)."""

    cap: bool = False  # stage 1: the defect-presence logit
    classes: bool = False  # stage 2: one logit per defect class (a multi-label supernet's head)

    @property
    def cap_head(self) -> bool:
        """Whether the network carries the CaP head at all (either output)."""
        return self.cap or self.classes

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cap": self.cap}
        if self.classes:  # absent when off, so archs without the class stage keep their encoding (and hash)
            out["classes"] = True
        return out


@dataclass(frozen=True)
class Arch:
    stages: tuple[StageArch, ...]
    decoder: DecoderArch
    heads: HeadsArch = field(default_factory=HeadsArch)

    # -- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [s.to_dict() for s in self.stages],
            "decoder": self.decoder.to_dict(),
            "heads": self.heads.to_dict(),
        }

    @staticmethod
    def from_dict(data: Any, where: str = "arch") -> Arch:
        return _arch_from_dict(data, where)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=2) if path.suffix == ".json" else self.to_yaml()
        write_text_atomic(path, text)

    @staticmethod
    def load(path: str | Path) -> Arch:
        data = load_yaml(path)  # YAML is a superset of JSON
        if isinstance(data, dict) and "arch" in data and "stages" not in data:
            data = data["arch"]  # accept a run summary that wraps the arch
        return Arch.from_dict(data, str(path))

    @property
    def hash(self) -> str:
        """Stable 16-hex-digit id of the canonical JSON (caches evaluations by it)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    # -- summaries ----------------------------------------------------------------
    def short(self) -> str:
        """Compact one-line description, e.g. 'w64[T@8,C3@7.5]|...|dec128'."""
        parts = []
        for st in self.stages:
            blocks = ",".join(f"{block_operator(b.op).letter}{b.kernel or ''}@{b.ffn_ratio:g}" for b in st.blocks)
            parts.append(f"w{st.width}[{blocks}]")
        detail = f"+d{self.decoder.detail}" if self.decoder.detail else ""
        return "|".join(parts) + f"|dec{self.decoder.width}{detail}"


def _expect(data: Any, kind: type, where: str) -> Any:
    if not isinstance(data, kind):
        raise AutoNADError(f"{where}: expected a {'mapping' if kind is dict else 'list'}")
    return data


def _keys(data: dict, required: set[str], optional: set[str], where: str) -> None:
    unknown = sorted(set(data) - required - optional)
    if unknown:
        raise AutoNADError(
            f"{where}: unknown key '{unknown[0]}' (known keys: {', '.join(sorted(required | optional))})"
        )
    missing = sorted(required - set(data))
    if missing:
        raise AutoNADError(f"{where}: missing key '{missing[0]}'")


def _number(value: Any, kind: type, where: str) -> Any:
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok:
        raise AutoNADError(f"{where}: expected {kind.__name__}, got {value!r}")
    return kind(value)


def _block_from_dict(data: Any, where: str) -> BlockArch:
    _keys(_expect(data, dict, where), {"op", "ffn_ratio"}, {"kernel"}, where)
    kernel = data.get("kernel")
    try:
        return BlockArch(
            op=str(data["op"]),
            ffn_ratio=_number(data["ffn_ratio"], float, f"{where}.ffn_ratio"),
            kernel=None if kernel is None else _number(kernel, int, f"{where}.kernel"),
        )
    except AutoNADError as e:
        raise AutoNADError(f"{where}: {e}") if not str(e).startswith(where) else e from None


def _stage_from_dict(data: Any, where: str) -> StageArch:
    _keys(_expect(data, dict, where), {"width", "blocks"}, {"depth"}, where)
    blocks = _expect(data["blocks"], list, f"{where}.blocks")
    stage = StageArch(
        width=_number(data["width"], int, f"{where}.width"),
        blocks=tuple(_block_from_dict(b, f"{where}.blocks[{i}]") for i, b in enumerate(blocks)),
    )
    if "depth" in data and data["depth"] != stage.depth:
        raise AutoNADError(f"{where}: depth is {data['depth']} but {stage.depth} blocks are listed")
    return stage


def _decoder_from_dict(data: Any, where: str) -> DecoderArch:
    _keys(_expect(data, dict, where), {"width", "pool_sizes", "edges"}, {"detail"}, where)
    edges = _expect(data["edges"], dict, f"{where}.edges")
    _keys(edges, set(EDGE_NAMES), set(), f"{where}.edges")
    pools = _expect(data["pool_sizes"], list, f"{where}.pool_sizes")
    try:
        return DecoderArch(
            width=_number(data["width"], int, f"{where}.width"),
            pool_sizes=tuple(_number(p, int, f"{where}.pool_sizes") for p in pools),
            edges=tuple(str(edges[n]) for n in EDGE_NAMES),
            detail=_number(data.get("detail", 0), int, f"{where}.detail"),
        )
    except AutoNADError as e:
        raise AutoNADError(f"{where}: {e}") if not str(e).startswith(where) else e from None


def _arch_from_dict(data: Any, where: str) -> Arch:
    _keys(_expect(data, dict, where), {"stages", "decoder"}, {"heads"}, where)
    stages = _expect(data["stages"], list, f"{where}.stages")
    heads = _expect(data.get("heads") or {}, dict, f"{where}.heads")
    _keys(heads, set(), {"cap", "classes"}, f"{where}.heads")
    for key in ("cap", "classes"):
        if not isinstance(heads.get(key, False), bool):
            raise AutoNADError(f"{where}.heads.{key}: expected true or false, got {heads[key]!r}")
    return Arch(
        stages=tuple(_stage_from_dict(s, f"{where}.stages[{i}]") for i, s in enumerate(stages)),
        decoder=_decoder_from_dict(data["decoder"], f"{where}.decoder"),
        heads=HeadsArch(cap=heads.get("cap", False), classes=heads.get("classes", False)),
    )
