"""Which subnets a supernet training step trains (paper: uniform; BigNAS/OFA: sandwich).

The sampler owns its generator and checkpoints its state, so a resumed run trains the same
arch sequence; every distributed rank builds it from the same seed and so agrees on the archs.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from autonad.space import Arch, HeadsArch, SearchSpace

SamplerKind = Literal["uniform", "sandwich"]


class ArchSampler:
    def __init__(
        self,
        space: SearchSpace,
        kind: SamplerKind = "uniform",
        num_random: int = 2,
        seed: int = 0,
        heads: HeadsArch = HeadsArch(),
    ):
        self.space, self.kind, self.num_random, self.heads = space, kind, num_random, heads
        self.rng = random.Random(seed)

    def next(self) -> list[Arch]:
        """Archs for one step. Sandwich: [largest, smallest, n random]; the first is the teacher."""
        if self.kind == "uniform":
            return [self.space.sample(self.rng, heads=self.heads)]
        archs = [self.space.largest(self.rng, heads=self.heads), self.space.smallest(self.rng, heads=self.heads)]
        return archs + [self.space.sample(self.rng, heads=self.heads) for _ in range(self.num_random)]

    @property
    def distills(self) -> bool:
        return self.kind == "sandwich"

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from autonad.train.checkpoint import restore_tuples

        self.rng.setstate(restore_tuples(state["rng"]))
