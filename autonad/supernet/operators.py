"""Step II supernet modules, one per block-operator family, registered under the family's name
(`autonad.space.operators`): a block slot builds each weight bank from this registry, so a new
family is its module here plus its `BlockOperator` entry, and an unregistered one is refused."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autonad.errors import AutoNADError
from autonad.space.operators import block_operator, block_operators, parse_choice
from autonad.supernet.elastic import Elastic, ElasticLinear, ElasticShiftConv
from autonad.supernet.modules import ACmixConv, ShiftMLP, SpatialReductionAttention


@dataclass(frozen=True)
class Step2Slot:
    """What a block slot tells a family's Step II module: the slot's largest sizes."""

    head_dim: int
    sr_ratio: int
    max_width: int
    max_kernel: int | None  # the largest kernel among the choices the bank serves (families with kernels)


_STEP2: dict[str, Callable[[Step2Slot], Elastic]] = {}


def register_step2(name: str):
    """Class decorator: the class's `from_slot` builds the Step II weights of family `name`."""
    block_operator(name)  # the family must be registered first

    def register(cls):
        if name in _STEP2:
            raise ValueError(f"Step II module of '{name}' is registered twice")
        _STEP2[name] = cls.from_slot
        return cls

    return register


def step2_module(choices: Sequence[str], head_dim: int, sr_ratio: int, max_width: int) -> Elastic:
    """Step II weights serving ``choices`` (all of one operator family)."""
    parsed = [parse_choice(c) for c in choices]
    op = parsed[0][0]
    if op.name not in _STEP2:
        raise AutoNADError(f"block op '{op.name}' has no supernet Step II module registered")
    kernels = [k for _, k in parsed if k is not None]
    return _STEP2[op.name](Step2Slot(head_dim, sr_ratio, max_width, max(kernels) if kernels else None))


def unregistered_families() -> list[str]:
    """Registered block operators without a Step II module (a test keeps this empty)."""
    return [op.name for op in block_operators() if op.name not in _STEP2]


@register_step2("transformer")
class SuperAttention(SpatialReductionAttention, Elastic):
    """Parameter-free, so nothing to slice: heads follow the input width."""

    @classmethod
    def from_slot(cls, slot: Step2Slot) -> SuperAttention:
        return cls(slot.head_dim, slot.sr_ratio)

    def set_active(self, width: int, kernel: int | None) -> None:
        pass

    def extract(self) -> SpatialReductionAttention:
        return SpatialReductionAttention(self.head_dim, self.sr_ratio)


@register_step2("conv")
class SuperACmixConv(ACmixConv, Elastic):
    """ACmix with W^P sliced ``[:k*k, :3*heads]`` (centre-out kernel rows, head-major inputs); the
    bank stores the largest kernel and smaller ones slice its centre (cross-size sharing)."""

    def __init__(self, head_dim: int, max_width: int, max_kernel: int):
        max_heads = max_width // head_dim
        fc = ElasticLinear(3 * max_heads, max_kernel * max_kernel, bias=False, std=(3 * max_heads) ** -0.5)
        super().__init__(fc, ElasticShiftConv(head_dim, max_heads, max_kernel), head_dim)

    @classmethod
    def from_slot(cls, slot: Step2Slot) -> SuperACmixConv:
        return cls(slot.head_dim, slot.max_width, slot.max_kernel)

    def set_active(self, width: int, kernel: int | None) -> None:
        if kernel is None:
            raise ValueError("a conv block needs a kernel size")
        heads = width // self.head_dim
        self.fc.set_active(3 * heads, kernel * kernel)
        self.shift.set_active(heads, kernel)

    def extract(self) -> ACmixConv:
        return ACmixConv(self.fc.extract(), self.shift.extract(), self.head_dim)


@register_step2("mlp")
class SuperShiftMLP(ShiftMLP, Elastic):
    """S2-MLPv2 with the split-attention MLP C -> C/4 -> 3C sliced by width."""

    def __init__(self, max_width: int):
        super().__init__(ElasticLinear(max_width, max_width // 4), ElasticLinear(max_width // 4, 3 * max_width))

    @classmethod
    def from_slot(cls, slot: Step2Slot) -> SuperShiftMLP:
        return cls(slot.max_width)

    def set_active(self, width: int, kernel: int | None) -> None:
        self.fc1.set_active(width, width // 4)
        self.fc2.set_active(width // 4, 3 * width)

    def extract(self) -> ShiftMLP:
        return ShiftMLP(self.fc1.extract(), self.fc2.extract())


from autonad.supernet import mbconv  # noqa: E402, F401  (registers the `mbconv` Step II module; it needs the decorator above)
