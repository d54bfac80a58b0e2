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


# --- crop mode (TransformConfig.scale set) ---

CROP = (24, 40)  # non-square on purpose: rotations swap the source window's sides


def _corner_defect(h: int = 320, w: int = 480) -> tuple[np.ndarray, np.ndarray]:
    """A large background image with a single defect pixel (class 1) near its bottom-right corner."""
    mask = np.zeros((h, w), np.int64)
    mask[h - 3, w - 2] = 1
    return np.zeros((h, w, 3), np.uint8), mask


def _vertical_line(h: int = 320, w: int = 480, column: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """A 1-px-wide full-height line of class 1; the image is white on the line, black elsewhere."""
    mask = np.zeros((h, w), np.int64)
    mask[:, column] = 1
    image = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    return image, mask


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("shape", [(10, 12), (100, 150)])
def test_crop_mode_train_output_is_exactly_size(scale, shape):
    h, w = shape
    mask = (np.arange(h * w) % 5).reshape(h, w).astype(np.int64)
    image = np.zeros((h, w, 3), np.uint8)
    cfg = TransformConfig(size=CROP, scale=scale, zoom=(0.8, 1.25), rotate90=True, interpolation="nearest")
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(4)
    rots = set()
    for _ in range(30):
        params = transform.sample(h, w, generator, mask)
        rots.add(params.rot)
        x, y = transform.apply(image, mask, params)
        assert x.shape == (3, *CROP) and x.dtype == torch.float32
        assert y.shape == CROP and y.dtype == torch.int64
        assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3, 4, 255}
        if min(shape) >= 100:  # crop windows fit inside a large image: no padding at all
            assert (y != 255).all(), params
        else:  # the image is smaller than every window: the rest is ignore padding
            assert (y == 255).any() and (y != 255).any(), params
    assert rots == {0, 1, 2, 3}


@pytest.mark.parametrize("rot", range(4))
def test_crop_mode_pads_small_images_with_ignore_around_the_exact_image(rot):
    mask = np.arange(120, dtype=np.int64).reshape(10, 12)  # every pixel distinct, none 255
    image = np.zeros((10, 12, 3), np.uint8)
    transform = Transform(TransformConfig(size=CROP, scale=1.0, hflip=False, vflip=False), train=True)
    generator = torch.Generator().manual_seed(rot)
    params = next(p for p in iter(lambda: transform.sample(10, 12, generator, mask), None) if p.rot == rot)
    top, left, ch, cw = params.crop
    assert top <= 0 and left <= 0 and top + ch >= 10 and left + cw >= 12  # the whole image is in the window
    _, y = transform.apply(image, mask, params)
    y = y.numpy()
    assert y.shape == CROP
    rows, cols = np.nonzero(y != 255)
    inner = y[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert (inner == np.rot90(mask, rot)).all()  # the image, untouched, and only ignore around it
    assert (y == 255).sum() == CROP[0] * CROP[1] - 120


def test_crop_mode_windows_are_size_over_scale_and_zoom():
    cfg = TransformConfig(size=CROP, scale=0.5, zoom=(0.5, 2.0), rotate90=True)
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(5)
    sides = set()
    for _ in range(60):
        p = transform.sample(400, 500, generator)
        top, left, ch, cw = p.crop
        out_h, out_w = CROP if p.rot % 2 == 0 else CROP[::-1]
        assert 0 <= top and top + ch <= 400 and 0 <= left and left + cw <= 500
        assert out_h / 1.0 - 1 <= ch <= out_h / 0.25 + 1 and out_w / 1.0 - 1 <= cw <= out_w / 0.25 + 1
        assert abs(ch / cw - out_h / out_w) < 0.1  # resampling keeps the aspect ratio
        sides.add(ch)
    assert len(sides) > 10  # the zoom really varies the window


def test_defect_crops_always_contain_the_defect():
    image, mask = _corner_defect()
    cfg = TransformConfig(size=CROP, scale=1.0, defect_crops=1.0)
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(6)
    for _ in range(50):
        _, y = transform(image, mask, generator)
        assert y.shape == CROP
        assert (y == 1).sum() == 1


def test_defect_crops_at_a_lower_scale_still_contain_a_defect_block():
    image, mask = _corner_defect()
    mask[-6:, -6:] = 1  # big enough to survive a 2x nearest downsampling
    transform = Transform(TransformConfig(size=CROP, scale=0.5, zoom=(0.8, 1.2), defect_crops=1.0), train=True)
    generator = torch.Generator().manual_seed(7)
    for _ in range(50):
        _, y = transform(image, mask, generator)
        assert (y == 1).sum() >= 1


def test_random_crops_mostly_miss_a_corner_defect():
    image, mask = _corner_defect()
    transform = Transform(TransformConfig(size=CROP, scale=1.0, defect_crops=0.0), train=True)
    generator = torch.Generator().manual_seed(6)
    hits = sum(int((transform(image, mask, generator)[1] == 1).any()) for _ in range(50))
    assert hits <= 5


def test_defect_crops_share_is_respected():
    image, mask = _corner_defect()
    transform = Transform(TransformConfig(size=CROP, scale=1.0, defect_crops=0.5), train=True)
    generator = torch.Generator().manual_seed(8)
    hits = sum(int((transform(image, mask, generator)[1] == 1).any()) for _ in range(200))
    assert 60 <= hits <= 140


def test_defect_crops_without_defects_fall_back_to_random_crops():
    mask = np.zeros((320, 480), np.int64)
    mask[:50] = 255  # ignore is not a defect
    transform = Transform(TransformConfig(size=CROP, scale=1.0, defect_crops=1.0), train=True)
    generator = torch.Generator().manual_seed(9)
    tops = {transform.sample(320, 480, generator, mask).crop[0] for _ in range(30)}
    assert len(tops) > 20


def test_native_scale_keeps_a_thin_line_one_pixel_wide():
    image, mask = _vertical_line()
    cfg = TransformConfig(size=CROP, scale=1.0, defect_crops=1.0, rotate90=False, interpolation="nearest", **PLAIN)
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(10)
    for _ in range(30):
        x, y = transform(image, mask, generator)
        line = y.numpy() == 1
        assert (line.sum(axis=1) == 1).all()  # every row: exactly one line pixel
        assert (_to_uint8(x[0])[line] == 255).all() and (_to_uint8(x[0])[~line] == 0).all()


def test_native_scale_with_rotation_turns_the_line_but_keeps_its_width():
    image, mask = _vertical_line()
    cfg = TransformConfig(size=CROP, scale=1.0, defect_crops=1.0, interpolation="nearest")
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(11)
    for _ in range(30):
        params = transform.sample(*mask.shape, generator, mask)
        line = transform.apply(image, mask, params)[1].numpy() == 1
        across = line.sum(axis=1) if params.rot % 2 == 0 else line.sum(axis=0)
        assert (across == 1).all(), params


def test_resize_mode_loses_a_thin_line():
    image, mask = _vertical_line()
    cfg = TransformConfig(size=(32, 32), rotate90=False, interpolation="nearest", **PLAIN)
    assert not cfg.crops
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(10)
    kept = 0
    for _ in range(30):
        _, y = transform(image, mask, generator)
        kept += int((y.numpy() == 1).sum(axis=1).tolist() == [1] * 32)
    assert kept <= 9  # a 10-15x squash drops the column most of the time
    _, y = Transform(cfg, train=False)(image, mask)
    assert (y == 1).sum() == 0  # the deterministic eval squash misses it entirely


def test_crop_mode_eval_pads_the_whole_image_to_the_stride():
    cfg = TransformConfig(size=CROP, scale=1.0, pad_to=32, mean=(0.3, 0.5, 0.7), std=(0.2, 0.25, 0.3))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (100, 300, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (100, 300)).astype(np.int64)
    assert cfg.eval_size(100, 300) == (100, 300)
    x, y = Transform(cfg, train=False)(image, mask)
    assert x.shape == (3, 128, 320) and y.shape == (128, 320)
    assert (y[:100, :300].numpy() == mask).all()
    assert (y[100:] == 255).all() and (y[:, 300:] == 255).all()
    mean, std = torch.tensor(cfg.mean)[:, None, None], torch.tensor(cfg.std)[:, None, None]
    assert torch.allclose(x[:, :100, :300], (torch.from_numpy(image).permute(2, 0, 1) / 255.0 - mean) / std, atol=1e-5)
    assert x[:, 100:].abs().max() < 0.02 and x[:, :, 300:].abs().max() < 0.02  # padding is the mean colour


def test_crop_mode_eval_resamples_by_scale_then_pads():
    cfg = TransformConfig(size=CROP, scale=0.5, pad_to=32)
    assert cfg.eval_size(100, 300) == (50, 150)
    assert cfg.eval_size(1, 3) == (1, 2)  # never below one pixel
    assert Transform(cfg, train=False).sample(100, 300) == Params((0, 0, 100, 300), size=(50, 150), pad_to=32)
    mask = np.zeros((100, 300), np.int64)
    mask[:, 150:] = 2
    x, y = Transform(cfg, train=False)(np.zeros((100, 300, 3), np.uint8), mask)
    assert x.shape == (3, 64, 160) and y.shape == (64, 160)
    assert (y[:50, :75] == 0).all() and (y[:50, 75:150] == 2).all()
    assert (y[50:] == 255).all() and (y[:, 150:] == 255).all()


def test_resize_mode_eval_is_unchanged_by_the_crop_fields():
    cfg = TransformConfig(size=(16, 20), pad_to=32)
    assert not cfg.crops and cfg.eval_size(100, 300) == (16, 20)
    x, y = Transform(cfg, train=False)(np.zeros((100, 300, 3), np.uint8), np.zeros((100, 300), np.int64))
    assert x.shape == (3, 16, 20) and y.shape == (16, 20)


def test_inference_switches_augmentation_off_and_keeps_the_rest():
    cfg = TransformConfig(size=CROP, scale=0.75, zoom=(0.5, 2.0), defect_crops=0.4, pad_to=16,
                          mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), interpolation="nearest")  # fmt: skip
    inf = cfg.inference()
    assert (inf.hflip, inf.vflip, inf.rotate90) == (False, False, False)
    assert (inf.resize_crop, inf.zoom, inf.brightness, inf.contrast, inf.defect_crops) == (None, None, 0.0, 0.0, 0.0)
    assert (inf.size, inf.scale, inf.pad_to, inf.mean, inf.std, inf.interpolation) == (
        CROP, 0.75, 16, cfg.mean, cfg.std, "nearest")  # fmt: skip
    assert inf.crops and inf.eval_size(100, 300) == cfg.eval_size(100, 300)
    assert not TransformConfig().inference().crops
    # trained with inference(): a crop of the native image, nothing else
    p = Transform(inf, train=True).sample(100, 300, torch.Generator().manual_seed(0))
    assert (p.rot, p.hflip, p.vflip, p.brightness, p.contrast) == (0, False, False, 1.0, 1.0)
    assert p.crop[2:] == (32, 53)


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("shape", [(24, 40), (12, 20), (90, 70)])
def test_crop_mode_image_and_mask_stay_aligned(scale, shape):
    image, mask = _label_image(*shape)
    cfg = TransformConfig(size=CROP, scale=scale, zoom=(0.7, 1.4), defect_crops=0.5, interpolation="nearest", **PLAIN)
    transform = Transform(cfg, train=True)
    generator = torch.Generator().manual_seed(12)
    seen = set()
    for _ in range(40):
        params = transform.sample(*mask.shape, generator, mask)
        seen.add((params.rot, params.hflip, params.vflip))
        x, y = transform.apply(image, mask, params)
        labels = y.numpy()
        valid = labels != 255
        assert valid.any()
        for channel in range(3):
            assert (_to_uint8(x[channel])[valid] == labels[valid]).all(), params
    assert len(seen) > 8
    x, y = Transform(cfg, train=False)(image, mask)  # evaluation: whole image, padded
    h, w = cfg.eval_size(*shape)
    assert y.shape == (-(-h // 32) * 32, -(-w // 32) * 32)
    valid = y.numpy() != 255
    assert (_to_uint8(x[0])[valid] == y.numpy()[valid]).all()
    assert (y[h:] == 255).all() and (y[:, w:] == 255).all()
    assert (_to_uint8(x)[:, h:] == 0).all() and (_to_uint8(x)[:, :, w:] == 0).all()  # the mean colour (0 here)


@pytest.mark.parametrize(
    ("field", "value"),
    [("scale", 0), ("scale", -1.0), ("scale", 9.0), ("defect_crops", 1.5), ("defect_crops", -0.1),
     ("zoom", (2.0, 1.0)), ("zoom", (0.0, 1.0)), ("pad_to", 0)],
)  # fmt: skip
def test_crop_mode_validation_names_the_field(field, value):
    with pytest.raises(AutoNADError, match=field):
        TransformConfig(**{field: value})


def test_crop_mode_config_from_yaml_mapping():
    cfg = from_mapping(TransformConfig, {"size": [24, 40], "scale": 0.5, "zoom": [0.8, 1.2], "defect_crops": 0.3,
                                         "pad_to": 16}, "recipe.augment")  # fmt: skip
    assert cfg.crops and cfg.scale == 0.5 and tuple(cfg.zoom) == (0.8, 1.2) and cfg.pad_to == 16
    with pytest.raises(AutoNADError, match="defect_crops"):
        from_mapping(TransformConfig, {"defect_crops": 2}, "recipe.augment")


def test_crop_draws_follow_the_generator():
    _, mask = _corner_defect()
    cfg = TransformConfig(size=CROP, scale=0.5, zoom=(0.8, 1.25), defect_crops=0.5)
    transform = Transform(cfg, train=True)

    def draws(seed: int) -> list[Params]:
        generator = torch.Generator().manual_seed(seed)
        return [transform.sample(*mask.shape, generator, mask) for _ in range(20)]

    assert draws(13) == draws(13)
    assert draws(13) != draws(14)
    image = np.zeros((*mask.shape, 3), np.uint8)
    a = transform(image, mask, torch.Generator().manual_seed(15))
    b = transform(image, mask, torch.Generator().manual_seed(15))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_crop_mode_jitters_small_images_inside_the_window():
    transform = Transform(TransformConfig(size=CROP, scale=1.0, rotate90=False), train=True)
    generator = torch.Generator().manual_seed(16)
    crops = [transform.sample(10, 12, generator).crop for _ in range(60)]
    assert all(-14 <= top <= 0 and -28 <= left <= 0 and (h, w) == CROP for top, left, h, w in crops)
    assert len({top for top, *_ in crops}) > 5 and len({left for _, left, *_ in crops}) > 10
