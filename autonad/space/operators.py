"""The block-operator registry (timm's `register_model` idea): one `BlockOperator` per operator
family of the encoder blocks, and every site that handles operators iterates it.

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

from autonad.errors import AutoNADError


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


_OPERATORS: dict[str, BlockOperator] = {}


def register_block_operator(op: BlockOperator) -> BlockOperator:
    if op.name in _OPERATORS:
        raise ValueError(f"block operator '{op.name}' is registered twice")
    _OPERATORS[op.name] = op
    return op


def block_operators() -> tuple[BlockOperator, ...]:
    return tuple(_OPERATORS.values())


def block_operator(name: str) -> BlockOperator:
    """The registered family called `name`, or one line naming the choices."""
    op = _OPERATORS.get(name)
    if op is None:
        raise AutoNADError(f"unknown block op '{name}' (choose from {', '.join(_OPERATORS)})")
    return op


def parse_choice(choice: str) -> tuple[BlockOperator, int | None]:
    """A choice token -> (family, kernel size): `conv5` -> (conv, 5), `mlp` -> (mlp, None)."""
    match = re.fullmatch(r"([a-z_]+)(\d*)", choice)
    op = _OPERATORS.get(match.group(1)) if match else None
    if op is None or op.kernels != bool(match.group(2)):
        raise AutoNADError(f"unknown block op choice '{choice}' (families: {', '.join(_OPERATORS)})")
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
