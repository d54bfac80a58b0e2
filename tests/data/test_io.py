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
