"""Deterministic, resumable batch order for supernet training.

Each epoch's order is a permutation seeded by (seed, epoch); a global batch of `batch_size`
items is split evenly over the ranks, so N processes see exactly the batches one process would.
Items are (epoch, index) keys, which `SegmentationDataset` turns into seeded augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from autonad.errors import AutoNADError


def batches_per_epoch(num_items: int, batch_size: int) -> int:
    return num_items // batch_size


class EpochBatches(Sampler[list[tuple[int, int]]]):
    def __init__(
        self, num_items: int, batch_size: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world: int = 1
    ):
        if batch_size % world:
            raise AutoNADError(f"batch size {batch_size} does not split evenly over {world} processes")
        if num_items < batch_size:
            raise AutoNADError(f"the train split has {num_items} images, fewer than one batch of {batch_size}")
        self.num_items, self.batch_size, self.seed, self.epoch = num_items, batch_size, seed, epoch
        self.start, self.rank, self.world = start, rank, world

    def __len__(self) -> int:
        return batches_per_epoch(self.num_items, self.batch_size) - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        per_rank = self.batch_size // self.world
        for b in range(self.start, batches_per_epoch(self.num_items, self.batch_size)):
            first = b * self.batch_size + self.rank * per_rank
            yield [(self.epoch, i) for i in order[first : first + per_rank]]
