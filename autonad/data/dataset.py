"""`SegmentationDataset`: a split of a `SegSource` as a torch Dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from autonad.data.base import IGNORE, SegSource
from autonad.data.transforms import Transform


def collate_padded(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch (image, mask) pairs of different sizes: pad bottom/right to the largest (image 0, mask
    ignore), so whole images evaluated at their own size batch together and padding never counts."""
    height = max(x.shape[-2] for x, _ in items)
    width = max(x.shape[-1] for x, _ in items)
    images = torch.zeros(len(items), items[0][0].shape[0], height, width, dtype=items[0][0].dtype)
    masks = torch.full((len(items), height, width), IGNORE, dtype=items[0][1].dtype)
    for i, (x, y) in enumerate(items):
        images[i, :, : x.shape[-2], : x.shape[-1]] = x
        masks[i, : y.shape[-2], : y.shape[-1]] = y
    return images, masks


class SegmentationDataset(Dataset):
    """Items are (image float32 3xHxW, mask int64 HxW with 255 = ignore).

    `split` is a split name ("train", "val", "test") or an explicit list of sample ids. Without a
    transform, images are only scaled to [0, 1] (no resizing, so batch them one at a time).

    An item is requested by index, or by an (epoch, index) key (or (epoch, index, repeat) for an
    item drawn again in the same epoch): the transform's random draws then come from a generator
    seeded by (seed, epoch, index[, repeat]), so augmentation is the same in any
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
            epoch, key, *draw = key  # draw: the item's repeat within the epoch (oversampling), 0 = first
            seed = ((self.seed * 1_000_003 + epoch) * 1_000_003 + key) % 2**63
            if draw and draw[0]:
                seed = (seed * 1_000_003 + draw[0]) % 2**63
            generator = torch.Generator().manual_seed(seed)
        image, mask = self.source.load(self.ids[key])
        if self.transform is not None:
            return self.transform(image, mask, generator)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        return x, torch.from_numpy(mask)


def eval_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    """The loader every evaluation uses: batches of images of one size (whole images at their own size
    would otherwise be padded to each other's, and global pooling would see the padding), padded to
    the stride; an own generator (creating its iterator then leaves the global torch RNG alone, which
    keeps resumed training exact)."""
    batches = same_size_batches(dataset, batch_size)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_padded, generator=torch.Generator())


def same_size_batches(dataset: Dataset, batch_size: int) -> list[list[int]]:
    """Indices in order, cut into batches of at most `batch_size` that share the source image size."""
    base, indices = dataset, list(range(len(dataset)))
    if isinstance(dataset, Subset):
        base, indices = dataset.dataset, list(dataset.indices)
    if not isinstance(base, SegmentationDataset):
        return [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
    groups: dict[tuple[int, int], list[int]] = {}
    for position, index in enumerate(indices):
        groups.setdefault(base.source.image_size(base.ids[index]), []).append(position)
    return [group[i : i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]
