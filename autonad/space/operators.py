"""The operator registries (timm's `register_model` idea): one `BlockOperator` per operator family of
the encoder blocks and one `EdgeOperator` per MFAM edge op, and every site that handles operators
iterates them.

The space package holds what the encoding and the search space need (the YAML token, whether a
choice carries a kernel size, widths it can serve, its cost rank and the name of its latency
calibration kind); `autonad.supernet.operators` registers each family's Step II supernet module
under the same name, and a test checks that both registries agree. A search space or an arch
naming an operator that is not registered is refused with one line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from autonad.errors import AutoNADError

T = TypeVar("T")


@dataclass(frozen=True)
class BlockOperator:
    name: str  # the token in a stage's `ops:` and an arch block's `op:`
    letter: str  # its letter in `Arch.short()` (a kernel size follows it: C3)
    description: str
    kernels: bool = False  # its choices carry a kernel size: one choice per stage `kernels:` entry (`conv3`)
    width_multiple: int = 1  # every stage width serving it must be a multiple of this
    cost_rank: int = 0  # light to heavy among operators, for the largest/smallest archs (then by kernel)
    colour: str = "#9c755f"  # in the report's arch diagram

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z_]*", self.name):
            raise ValueError(f"operator name '{self.name}' is not lower-case letters (kernel sizes follow it)")

    @property
    def calibration_kind(self) -> str:
        """The latency calibration fits one scale per operator family."""
        return f"block.{self.name}"

    def choices(self, kernels: Sequence[int]) -> tuple[str, ...]:
        """This family's choice tokens in a stage with these kernel sizes."""
        return tuple(f"{self.name}{k}" for k in kernels) if self.kernels else (self.name,)

    def label(self, kernel: int | None) -> str:
        """For people: `conv 5x5`, `transformer`."""
        return f"{self.name} {kernel}x{kernel}" if self.kernels else self.name


class Registry(Generic[T]):
    """Named entries of one family, in registration order; a name is taken once across every
    registry (so a space's token means one operator)."""

    taken: ClassVar[set[str]] = set()

    def __init__(self, what: str):
        self.what = what  # how an error names an entry: "block op", "edge op"
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        if entry.name in Registry.taken:
            raise ValueError(f"operator '{entry.name}' is registered twice")
        Registry.taken.add(entry.name)
        self._entries[entry.name] = entry
        return entry

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entries(self) -> tuple[T, ...]:
        return tuple(self._entries.values())

    def get(self, name: str, where: str | None = None) -> T:
        """The entry called `name`, or one line (starting with `where`) naming the choices."""
        entry = self._entries.get(name)
        if entry is None:
            prefix = f"{where}: unknown op" if where else f"unknown {self.what}"
            raise AutoNADError(f"{prefix} '{name}' (choose from {', '.join(self._entries)})")
        return entry


_OPERATORS: Registry[BlockOperator] = Registry("block op")
register_block_operator = _OPERATORS.register
block_operators = _OPERATORS.entries


def block_operator(name: str) -> BlockOperator:
    """The registered family called `name`, or one line naming the choices."""
    return _OPERATORS.get(name)


def parse_choice(choice: str) -> tuple[BlockOperator, int | None]:
    """A choice token -> (family, kernel size): `conv5` -> (conv, 5), `mlp` -> (mlp, None)."""
    match = re.fullmatch(r"([a-z_]+)(\d*)", choice)
    op = _OPERATORS.get(match.group(1)) if match and match.group(1) in _OPERATORS else None
    if op is None or op.kernels != bool(match.group(2)):
        families = ", ".join(o.name for o in block_operators())
        raise AutoNADError(f"unknown block op choice '{choice}' (families: {families})")
    return op, int(match.group(2)) if op.kernels else None


def cost_order(choice: str) -> tuple[int, int]:
    """Sort key of a choice token from light to heavy: the family's rank, then the kernel size."""
    op, kernel = parse_choice(choice)
    return op.cost_rank, kernel or 0


register_block_operator(BlockOperator(
    "transformer", "T", "spatial-reduction self-attention (eq. 24)", cost_rank=3, colour="#4e79a7",
))  # fmt: skip
register_block_operator(BlockOperator(
    "conv", "C", "ACmix convolution from the shared q/k/v (eq. 25)", kernels=True, cost_rank=1, colour="#f28e2b",
))  # fmt: skip
register_block_operator(BlockOperator(
    "mlp", "M", "S2-MLPv2 spatial-shift MLP with split attention (eq. 26)",
    width_multiple=4, cost_rank=0, colour="#59a14f",  # its split-attention MLP is C/4 wide
))  # fmt: skip
register_block_operator(BlockOperator(
    "mbconv", "I", "inverted residual (MBConv): the shared q/k/v as 1x1 expansion, depthwise kxk, 1x1 back",
    kernels=True, cost_rank=2, colour="#e15759",  # 3C^2 per pixel for its 1x1: heavier than ACmix's
))  # fmt: skip


@dataclass(frozen=True)
class EdgeOperator:
    """An MFAM edge op: a `kernel` x `kernel` convolution at `dilation`, after a depthwise
    `depthwise` x `depthwise` convolution where that is set (depthwise-separable). In a shared bank the
    largest kernel is stored and the others slice it (`autonad.supernet.supernet.ElasticEdgeConv`)."""

    name: str  # the token in a space's `edge_ops:` and an arch's decoder `edges:`
    kernel: int
    description: str
    dilation: int = 1
    depthwise: int = 0  # kernel of the depthwise convolution before it (0: none)
    cost_rank: int = 0  # light to heavy among edge ops, for the largest/smallest archs

    def __post_init__(self):
        if self.kernel < 1 or self.kernel % 2 == 0 or self.dilation < 1 or self.depthwise < 0:
            raise ValueError(f"edge op '{self.name}': odd kernel >= 1, dilation >= 1 and depthwise >= 0")


_EDGE_OPERATORS: Registry[EdgeOperator] = Registry("edge op")
register_edge_operator = _EDGE_OPERATORS.register
edge_operators = _EDGE_OPERATORS.entries


def is_edge_operator(name: str) -> bool:
    return name in _EDGE_OPERATORS


def edge_operator(name: str, where: str = "edge op") -> EdgeOperator:
    """The registered edge op called `name`, or one line naming the choices."""
    return _EDGE_OPERATORS.get(name, where)


register_edge_operator(EdgeOperator("conv1x1", 1, "1x1 convolution", cost_rank=1))
register_edge_operator(EdgeOperator("conv3x3", 3, "3x3 convolution", cost_rank=2))
register_edge_operator(EdgeOperator("conv5x5", 5, "5x5 convolution", cost_rank=4))
register_edge_operator(EdgeOperator("dil3x3", 3, "3x3 convolution at dilation 2", dilation=2, cost_rank=3))
register_edge_operator(EdgeOperator(
    "dwsep3x3", 1, "depthwise 3x3 then 1x1 (depthwise-separable)", depthwise=3, cost_rank=0,
))  # fmt: skip
