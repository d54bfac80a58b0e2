from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autonad.data import io
from autonad.errors import AutoNADError


def test_palette_masks_read_as_indices(tmp_path, layout):
    mask = layout.box_mask(8, 8, 3)
    mask[0, 0] = 255
    path = layout.save(mask, tmp_path / "m.png", "P", layout.VOC_PALETTE)
    raw, mode = io.read_mask_raw(path)
    assert mode == "P" and (raw == mask).all()


def test_bilevel_masks_read_as_0_255(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.eye(4, dtype=bool)).save(path)
    raw, _ = io.read_mask_raw(path)
    assert raw.dtype == np.uint8 and set(np.unique(raw)) == {0, 255}


def test_images_are_rgb_and_sizes_come_from_the_header(tmp_path, layout):
    grey = layout.save(layout.noise(np.random.default_rng(0), 6, 9, 1), tmp_path / "g.png")
    assert io.read_image(grey).shape == (6, 9, 3)
    assert io.image_size(grey) == (6, 9) == io.check_image(grey)


def test_garbage_and_truncated_files(tmp_path, layout):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    for read in (io.read_image, io.image_size, io.check_image):
        with pytest.raises(AutoNADError, match=r"garbage\.png: unreadable or corrupt image"):
            read(garbage)
    big = layout.save(layout.noise(np.random.default_rng(0), 64, 64), tmp_path / "full.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    assert io.image_size(cut) == (64, 64)  # the header is intact ...
    for read in (io.read_image, io.check_image):  # ... but decoding finds the damage
        with pytest.raises(AutoNADError, match=r"cut\.jpg: unreadable or corrupt image \(.*truncated"):
            read(cut)
    with pytest.raises(AutoNADError, match=r"nothing\.png: image file not found"):
        io.read_image(tmp_path / "nothing.png")


def test_16_bit_images_are_scaled_by_their_own_range_not_saturated(tmp_path):
    ramp = np.tile(np.arange(0, 65521, 16, dtype=np.uint16)[None, :], (4, 1))  # 0..65520, as the example
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    rgb = io.read_image(tmp_path / "ramp.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (4, ramp.shape[1], 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and (rgb[..., 0] == 255).mean() < 0.01
    assert (np.diff(rgb[0, :, 0].astype(int)) >= 0).all()  # the order of intensities kept
    twelve_bit = (ramp // 16).astype(np.uint16)  # a 12-bit sensor in a 16-bit file: 0..4095
    Image.fromarray(twelve_bit).save(tmp_path / "12bit.png")
    assert io.read_image(tmp_path / "12bit.png")[0, -1, 0] == 255  # not left nearly black
    Image.fromarray(np.full((4, 4), 700, np.uint16)).save(tmp_path / "flat.png")
    assert (io.read_image(tmp_path / "flat.png") == 0).all()


def test_alpha_is_dropped_and_greyscale_replicated(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10  # nearly transparent red stays red
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert (io.read_image(tmp_path / "a.png")[..., 0] == 200).all()
    Image.fromarray(np.full((4, 4), 77, np.uint8), "L").save(tmp_path / "g.png")
    assert (io.read_image(tmp_path / "g.png") == 77).all()


def test_exif_orientation_is_applied_to_the_pixels_and_the_header_size(tmp_path):
    image = Image.new("RGB", (30, 20), (10, 20, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise: shown 20 wide, 30 high
    image.save(tmp_path / "r.jpg", exif=exif)
    assert io.image_size(tmp_path / "r.jpg") == (30, 20) == io.read_image(tmp_path / "r.jpg").shape[:2]
    assert io.check_image(tmp_path / "r.jpg") == (30, 20)


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels is more than twice the limit
    with pytest.raises(AutoNADError, match=r"big.png: image larger than 1,000 pixels, refused"):
        io.read_image(tmp_path / "big.png")
