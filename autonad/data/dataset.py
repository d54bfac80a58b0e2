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
    """

    def __init__(self, source: SegSource, split: str | Sequence[str], transform: Transform | None = None):
        self.source = source
        self.ids = list(source.splits[split]) if isinstance(split, str) else list(split)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.source.load(self.ids[index])
        if self.transform is not None:
            return self.transform(image, mask)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        return x, torch.from_numpy(mask)
