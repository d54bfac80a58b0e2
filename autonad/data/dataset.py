"""`SegmentationDataset`: a split of a `SegSource` as a torch Dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from autonad.data.base import SegSource
from autonad.data.transforms import Transform


class SegmentationDataset(Dataset):
    """Items are (image float32 3xHxW, mask int64 HxW with 255 = ignore).

    `split` is a split name ("train", "val", "test") or an explicit list of sample ids. Without a
    transform, images are only scaled to [0, 1] (no resizing, so batch them one at a time).

    An item is requested by index, or by an (epoch, index) key: the transform's random draws then
    come from a generator seeded by (seed, epoch, index), so augmentation is the same in any
    DataLoader worker, on any distributed rank and after a resume.
    """

    def __init__(
        self, source: SegSource, split: str | Sequence[str], transform: Transform | None = None, seed: int = 0
    ):
        self.source = source
        self.ids = list(source.splits[split]) if isinstance(split, str) else list(split)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        generator = None
        if isinstance(key, tuple):
            epoch, key = key
            generator = torch.Generator().manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_003 + key) % 2**63)
        image, mask = self.source.load(self.ids[key])
        if self.transform is not None:
            return self.transform(image, mask, generator)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        return x, torch.from_numpy(mask)
