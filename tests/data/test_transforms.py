from __future__ import annotations

import numpy as np
import pytest
import torch

from autonad.config import from_mapping
from autonad.data import Params, Transform, TransformConfig
from autonad.errors import AutoNADError

PLAIN = {"brightness": 0.0, "contrast": 0.0, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def _label_image(h: int = 24, w: int = 40, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A mask of distinct blocks (plus ignore) and an image whose pixels equal the mask."""
    rng = np.random.default_rng(0)
    mask = rng.integers(0, classes, (h // 4, w // 4)).repeat(4, 0).repeat(4, 1).astype(np.int64)
    mask[:2, :] = 255
    return np.repeat(mask.astype(np.uint8)[..., None], 3, axis=2), mask


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return np.rint(x.numpy() * 255).astype(np.int64)


def test_eval_resizes_and_normalises():
    cfg = TransformConfig(size=(16, 20), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    image = np.full((30, 50, 3), 255, np.uint8)
    x, y = Transform(cfg, train=False)(image, np.zeros((30, 50), np.int64))
    assert x.shape == (3, 16, 20) and x.dtype == torch.float32
    assert y.shape == (16, 20) and y.dtype == torch.int64
    assert torch.allclose(x[:, 0, 0], torch.tensor([2.0, 1.0, 0.5]))


def test_train_masks_keep_class_ids_and_ignore():
    image, mask = _label_image()
    transform = Transform(TransformConfig(size=(33, 17)), train=True)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        _, y = transform(image, mask, generator)
        assert y.shape == (33, 17)
        assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3, 255}


def test_image_and_mask_stay_aligned():
    image, mask = _label_image()
    cfg = TransformConfig(size=(21, 30), interpolation="nearest", **PLAIN)
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(40):
        params = transform.sample(*mask.shape, generator)
        seen.add((params.rot, params.hflip, params.vflip))
        x, y = transform.apply(image, mask, params)
        for channel in range(3):
            assert (_to_uint8(x[channel]) == y.numpy()).all(), params
    assert len(seen) > 8  # many rotation/flip combinations were exercised


def test_bilinear_images_stay_aligned_away_from_edges():
    image, mask = _label_image(48, 48)
    image = (image.astype(np.int64) * 60).clip(0, 255).astype(np.uint8)
    transform = Transform(TransformConfig(size=(96, 96), **PLAIN), train=True)
    x, y = transform(image, mask, torch.Generator().manual_seed(2))
    nearest = np.abs(_to_uint8(x[0])[..., None] - np.array([0, 60, 120, 180, 255])).argmin(-1)
    labels = np.where(y.numpy() == 255, 4, y.numpy())
    padded = np.pad(labels, 1, mode="edge")
    interior = np.all(
        [padded[1 + dy : 97 + dy, 1 + dx : 97 + dx] == labels for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 0
    )
    assert interior.mean() > 0.5
    assert (nearest == labels)[interior].mean() > 0.99


@pytest.mark.parametrize("rot", range(4))
@pytest.mark.parametrize("flips", [(False, False), (True, False), (False, True), (True, True)])
def test_rotations_and_flips_are_exact(rot, flips):
    hflip, vflip = flips
    image = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    mask = np.arange(36, dtype=np.int64).reshape(6, 6)
    transform = Transform(TransformConfig(size=(6, 6), interpolation="nearest", **PLAIN), train=True)
    x, y = transform.apply(image, mask, Params((0, 0, 6, 6), rot=rot, hflip=hflip, vflip=vflip))
    expected = np.rot90(mask, rot)  # counter-clockwise quarter-turns
    expected = expected[:, ::-1] if hflip else expected
    expected = expected[::-1] if vflip else expected
    assert (y.numpy() == expected).all()
    assert (_to_uint8(x).transpose(1, 2, 0) == image[..., 0:3][expected // 6, expected % 6]).all()


def test_one_quarter_turn_moves_the_top_right_corner_to_the_top_left():
    mask = np.zeros((4, 6), np.int64)
    mask[0, 5] = 1
    transform = Transform(TransformConfig(size=(6, 4), **PLAIN), train=True)
    _, y = transform.apply(np.zeros((4, 6, 3), np.uint8), mask, Params((0, 0, 4, 6), rot=1))
    assert y.shape == (6, 4) and y[0, 0] == 1 and y.sum() == 1


def test_random_crop_stays_inside_and_respects_the_scale():
    transform = Transform(TransformConfig(resize_crop=(0.3, 0.6)), train=True)
    generator = torch.Generator().manual_seed(3)
    for _ in range(100):
        top, left, h, w = transform.sample(90, 120, generator).crop
        assert 0 <= top and top + h <= 90 and 0 <= left and left + w <= 120
        assert 0.2 <= h * w / (90 * 120) <= 0.65


def test_draws_follow_the_generator_and_eval_is_identity():
    transform = Transform(TransformConfig(), train=True)
    a = [transform.sample(50, 50, torch.Generator().manual_seed(9)) for _ in range(2)]
    assert a[0] == a[1]
    assert Transform(TransformConfig(), train=False).sample(50, 70) == Params((0, 0, 50, 70))


def test_brightness_and_contrast_change_only_the_image():
    image = np.random.default_rng(0).integers(50, 200, (8, 8, 3), dtype=np.uint8)
    mask = np.ones((8, 8), np.int64)
    transform = Transform(TransformConfig(size=(8, 8), **{**PLAIN, "brightness": 0.5}), train=True)
    x, y = transform.apply(image, mask, Params((0, 0, 8, 8), brightness=1.2, contrast=0.5))
    scaled = image / 255.0 * 1.2
    expected = np.clip((scaled - scaled.mean()) * 0.5 + scaled.mean(), 0, 1)
    assert np.allclose(x.numpy().transpose(1, 2, 0), expected, atol=1e-5)
    assert (y.numpy() == mask).all()


def test_config_from_yaml_mapping_and_validation():
    cfg = from_mapping(TransformConfig, {"size": [64, 96], "resize_crop": None, "vflip": False}, "recipe.augment")
    assert cfg.size == (64, 96) and cfg.resize_crop is None and cfg.vflip is False and cfg.hflip is True
    with pytest.raises(AutoNADError, match="resize_crop"):
        from_mapping(TransformConfig, {"resize_crop": [0.9, 0.2]}, "recipe.augment")
    with pytest.raises(AutoNADError, match="unknown key 'flip'"):
        from_mapping(TransformConfig, {"flip": True}, "recipe.augment")
