from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from autonad.data import SegmentationDataset, SyntheticSource, Transform, TransformConfig


def test_split_as_torch_dataset_batches():
    source = SyntheticSource(n=40, size=64, seed=0)
    dataset = SegmentationDataset(source, "train", Transform(TransformConfig(size=(32, 48)), train=True))
    assert len(dataset) == len(source.splits["train"]) > 20
    images, masks = next(iter(DataLoader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 32, 48) and images.dtype == torch.float32
    assert masks.shape == (4, 32, 48) and masks.dtype == torch.int64
    assert set(torch.unique(masks).tolist()) <= {0, 1, 2, 3}


def test_explicit_ids_without_transform():
    source = SyntheticSource(n=10, size=32, seed=1)
    x, y = SegmentationDataset(source, ["3", "7"])[1]
    image, mask = source.load("7")
    assert x.shape == (3, 32, 32) and torch.allclose(x * 255, torch.from_numpy(image).permute(2, 0, 1).float())
    assert (y.numpy() == mask).all()
