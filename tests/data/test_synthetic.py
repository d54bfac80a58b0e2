from __future__ import annotations

import time

import numpy as np
import pytest

from autonad.data import SyntheticSource, open_dataset


@pytest.fixture(scope="module")
def full():
    """The default dataset (500 images of 128x128), generated once for this module."""
    start = time.perf_counter()
    source = open_dataset("synthetic", seed=0)
    infos = source.verify()
    return source, infos, time.perf_counter() - start


def _bytes(source: SyntheticSource) -> list[bytes]:
    return [b for i in source.ids for b in (source.load_image(i).tobytes(), source.load_mask(i).tobytes())]


def test_same_seed_same_bytes_other_seed_other_data():
    a, b, c = SyntheticSource(n=40, seed=7), SyntheticSource(n=40, seed=7), SyntheticSource(n=40, seed=8)
    assert _bytes(a) == _bytes(b)
    assert _bytes(a) != _bytes(c)
    assert a.splits == b.splits


def test_images_and_masks(full):
    source, _, _ = full
    assert source.classes == ["background", "scratch", "spot", "crack"]
    image, mask = source.load(source.ids[0])
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert mask.shape == (128, 128) and mask.dtype == np.int64
    assert image.std() > 2  # textured, not flat


def test_defect_free_share_and_classes(full):
    source, infos, seconds = full
    assert len(infos) == 500
    defect_free = sum(1 for info in infos if not any(info.pixels[1:]))
    assert 0.62 <= defect_free / len(infos) <= 0.78
    for class_id in (1, 2, 3):
        assert sum(1 for info in infos if info.pixels[class_id]) >= 20, source.classes[class_id]
    assert seconds < 10, f"generating the dataset took {seconds:.1f} s"


def test_defect_sizes_are_long_tailed(full):
    _, infos, _ = full
    areas = np.array([a for info in infos for a in info.pixels[1:4] if a])
    assert np.median(areas) < 120  # most defects cover under 1% of a 128x128 image (16384 pixels)
    assert areas.max() > 20 * np.median(areas)  # a few are large
    assert np.percentile(areas, 90) < areas.max() / 3


def test_defective_images_differ_from_their_background(full):
    source, infos, _ = full
    sample = next(info.id for info in infos if info.pixels[2] > 100)  # a large spot
    image, mask = source.load(sample)
    grey = image.astype(float).mean(axis=2)
    assert abs(grey[mask == 2].mean() - grey[mask == 0].mean()) > 20
