"""Deterministic, resumable batch order for supernet training.

Each epoch's order is a permutation seeded by (seed, epoch); a global batch of `batch_size`
items is split evenly over the ranks, so N processes see exactly the batches one process would.
Items are (epoch, index) keys, which `SegmentationDataset` turns into seeded augmentation.

Positive oversampling (`defect_share`, a floor): where fewer items than that share are defective,
each global batch holds round(share * batch) defective images and the rest defect-free ones, each
drawn from its own seeded permutation (cycled), so a dataset with few defective images still shows
them in every batch. The epoch length is unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from autonad.errors import AutoNADError


def batches_per_epoch(num_items: int, batch_size: int) -> int:
    return num_items // batch_size


class EpochBatches(Sampler[list[tuple[int, int]]]):
    def __init__(
        self, num_items: int, batch_size: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world: int = 1,
        defective: list[bool] | None = None, defect_share: float | None = None,
    ):  # fmt: skip
        if batch_size % world:
            raise AutoNADError(f"batch size {batch_size} does not split evenly over {world} processes")
        if num_items < batch_size:
            raise AutoNADError(f"the train split has {num_items} images, fewer than one batch of {batch_size}")
        self.num_items, self.batch_size, self.seed, self.epoch = num_items, batch_size, seed, epoch
        self.start, self.rank, self.world = start, rank, world
        self.defective, self.defect_share = defective, defect_share

    def __len__(self) -> int:
        return batches_per_epoch(self.num_items, self.batch_size) - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        keys = [(self.epoch, i) for i in order]
        if self.oversampling:  # a repeated item is keyed by its repeat too, so it gets new augmentation
            order, seen = self._oversampled(generator), Counter()
            keys = [(self.epoch, i, seen.update([i]) or seen[i] - 1) for i in order]
        per_rank = self.batch_size // self.world
        for b in range(self.start, batches_per_epoch(self.num_items, self.batch_size)):
            first = b * self.batch_size + self.rank * per_rank
            yield keys[first : first + per_rank]

    @property
    def oversampling(self) -> bool:
        """Whether defective items are rarer than `defect_share` (a floor: they are never undersampled)."""
        if self.defect_share is None or not self.defective:
            return False
        return 0 < sum(self.defective) < self.defect_share * len(self.defective)

    def _oversampled(self, generator: torch.Generator) -> list[int]:
        """The epoch's order with round(share * batch) defective items in every batch."""
        pos = [i for i, d in enumerate(self.defective) if d]
        neg = [i for i, d in enumerate(self.defective) if not d]
        k = round(self.defect_share * self.batch_size) if pos else 0
        k = k if neg else self.batch_size
        batches = batches_per_epoch(self.num_items, self.batch_size)
        pos_order = _cycled(pos, k * batches, generator)
        neg_order = _cycled(neg, (self.batch_size - k) * batches, generator)
        order = []
        for b in range(batches):
            batch = (
                pos_order[b * k : (b + 1) * k] + neg_order[b * (self.batch_size - k) : (b + 1) * (self.batch_size - k)]
            )
            perm = torch.randperm(len(batch), generator=generator).tolist()
            order += [batch[p] for p in perm]  # defective ones spread over the ranks
        return order


def _cycled(items: list[int], count: int, generator: torch.Generator) -> list[int]:
    """`count` items: seeded permutations of `items`, one after another."""
    out: list[int] = []
    while items and len(out) < count:
        out += [items[i] for i in torch.randperm(len(items), generator=generator).tolist()]
    return out[:count]
