from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import DataLoader

from autonad.data import (
    SegmentationDataset,
    SyntheticSource,
    Transform,
    TransformConfig,
    collate_padded,
    eval_loader,
)


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


def _item(c: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(c, h, w, generator=generator), torch.randint(0, 4, (h, w), generator=generator)


def test_collate_padded_pads_bottom_right_with_zero_and_ignore():
    a, b = _item(3, 10, 12, 0), _item(3, 7, 20, 1)
    images, masks = collate_padded([a, b])
    assert images.shape == (2, 3, 10, 20) and images.dtype == torch.float32
    assert masks.shape == (2, 10, 20) and masks.dtype == torch.int64
    assert torch.equal(images[0, :, :10, :12], a[0]) and torch.equal(masks[0, :10, :12], a[1])
    assert torch.equal(images[1, :, :7, :20], b[0]) and torch.equal(masks[1, :7, :20], b[1])
    assert (images[0, :, :, 12:] == 0).all() and (masks[0, :, 12:] == 255).all()
    assert (images[1, :, 7:] == 0).all() and (masks[1, 7:] == 255).all()
    assert (masks[0, :, :12] != 255).all() and (masks[1, :7] != 255).all()  # no ignore inside the originals


def test_collate_padded_of_equal_sizes_is_a_plain_stack():
    items = [_item(3, 8, 8, seed) for seed in range(3)]
    images, masks = collate_padded(items)
    assert torch.equal(images, torch.stack([x for x, _ in items]))
    assert torch.equal(masks, torch.stack([y for _, y in items]))


def test_eval_loader_batches_in_order_and_leaves_the_global_rng_alone():
    items = [_item(3, 10, 12, 0), _item(3, 7, 20, 1), _item(3, 5, 5, 2), _item(3, 9, 3, 3), _item(3, 4, 4, 4)]
    loader = eval_loader(items, batch_size=2)
    state = torch.get_rng_state()
    batches = list(loader)
    assert torch.equal(torch.get_rng_state(), state)
    assert [tuple(x.shape) for x, _ in batches] == [(2, 3, 10, 20), (2, 3, 9, 5), (1, 3, 4, 4)]
    for i, (x, y) in enumerate(items):
        images, masks = batches[i // 2]
        assert torch.equal(images[i % 2, :, : x.shape[1], : x.shape[2]], x)
        assert torch.equal(masks[i % 2, : y.shape[0], : y.shape[1]], y)
    assert [tuple(x.shape) for x, _ in eval_loader(items, batch_size=2)] == [tuple(x.shape) for x, _ in batches]


def _sized_source(sizes: list[tuple[int, int]]) -> SimpleNamespace:
    """What SegmentationDataset and eval_loader use of a SegSource: .splits, .load(id), .image_size(id)."""

    def load(sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        h, w = sizes[int(sample_id)]
        mask = np.zeros((h, w), np.int64)
        mask[h // 2, w // 3] = 1 + int(sample_id) % 2
        return np.full((h, w, 3), 200, np.uint8), mask

    def image_size(sample_id: str) -> tuple[int, int]:
        return sizes[int(sample_id)]

    return SimpleNamespace(splits={"val": [str(i) for i in range(len(sizes))]}, load=load, image_size=image_size)


def test_crop_mode_whole_images_evaluate_through_eval_loader():
    sizes = [(100, 300), (40, 50), (100, 300), (70, 20)]
    cfg = TransformConfig(size=(24, 40), scale=1.0, pad_to=32)
    dataset = SegmentationDataset(_sized_source(sizes), "val", Transform(cfg.inference(), train=False))
    batches = list(eval_loader(dataset, batch_size=2))
    # images of one size batch together (padding never mixes sizes), each padded to the stride
    assert [tuple(m.shape) for _, m in batches] == [(2, 128, 320), (1, 64, 64), (1, 96, 32)]
    order = [0, 2, 1, 3]
    masks = [m[j] for _, m in batches for j in range(m.shape[0])]
    for mask, i in zip(masks, order):
        h, w = sizes[i]
        assert (mask != 255).sum() == h * w  # the real pixels; all padding is ignore
        assert mask[h // 2, w // 3] == 1 + i % 2 and (mask == 1 + i % 2).sum() == 1


def test_crop_mode_items_are_reproducible_by_epoch_and_index():
    cfg = TransformConfig(size=(24, 40), scale=0.5, zoom=(0.8, 1.25), defect_crops=0.5)
    dataset = SegmentationDataset(_sized_source([(120, 160)] * 4), "val", Transform(cfg, train=True), seed=3)
    a, b, c = dataset[(2, 1)], dataset[(2, 1)], dataset[(3, 1)]
    assert a[0].shape == (3, 24, 40) and a[1].shape == (24, 40)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) or not torch.equal(a[1], c[1])
