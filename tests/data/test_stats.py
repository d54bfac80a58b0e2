from __future__ import annotations

import numpy as np
import pytest

from autonad.data import compute_norm_stats, open_dataset, summarize


def test_norm_stats_are_exact_per_channel(tmp_path, layout):
    root = tmp_path / "flat"
    colours = [(0, 100, 200), (50, 100, 250)]
    for i, colour in enumerate(colours):
        layout.save(np.tile(np.array(colour, np.uint8), (4, 5, 1)), root / "images" / f"{i}.png")
        layout.save(layout.box_mask(4, 5, 255, top=0, left=0, size=2), root / "masks" / f"{i}.png")
    source = open_dataset(f"folder:{root}")
    mean, std = compute_norm_stats(source, ids=source.ids)
    assert mean == pytest.approx((25 / 255, 100 / 255, 225 / 255))
    assert std == pytest.approx((25 / 255, 0.0, 25 / 255), abs=1e-5)


def test_norm_stats_default_to_a_subsample_of_train():
    from autonad.data import SyntheticSource

    source = SyntheticSource(n=60, size=32)
    mean, std = compute_norm_stats(source, max_images=10)
    assert all(0.2 < m < 0.8 for m in mean) and all(0 < s < 0.3 for s in std)
    assert (mean, std) == compute_norm_stats(source, max_images=10)


def test_summary_counts(make_mt, layout):
    source = open_dataset("mt", data_root=make_mt())
    s = summarize(source, source.verify())
    assert (s["images"], s["positives"], s["negatives"], s["num_classes"]) == (20, 14, 6, 6)
    assert s["images_per_class"] == {"background": 20, "Blowhole": 3, "Break": 3, "Crack": 3, "Fray": 3, "Uneven": 2}
    assert s["height"] == [20, 24] and s["width"] == [16, 26]
    assert sum(s["per_split"][p]["images"] for p in ("train", "val", "test")) == 20
    assert s["split"]["used"] == {p: s["per_split"][p]["images"] for p in ("train", "val", "test")}
    assert s["split"]["official"] == {} and s["split"]["origin"].startswith("generated")
    total = sum((20 + i) * (16 + 2 * k) for k, n in enumerate(layout.MT_COUNTS.values()) for i in range(n))
    assert s["pixel_share"]["Crack"] == pytest.approx(3 * 16 / total)  # 4x4 pixels >= 128 in each of 3 masks


def _lines(tmp_path, layout, width: int) -> object:
    """A folder dataset of 320x480 images, each with one horizontal defect line `width` px wide."""
    root = tmp_path / f"lines{width}"
    for i in range(10):
        mask = np.zeros((320, 480), np.uint8)
        mask[100 + 10 * i : 100 + 10 * i + width, 40:440] = 1
        layout.save(np.full((320, 480, 3), 128, np.uint8), root / "images" / f"{i}.png")
        layout.save(mask, root / "masks" / f"{i}.png")
    return open_dataset(f"folder:{root}")


@pytest.mark.parametrize(("width", "min_lost"), [(1, 0.3), (3, 0.01)])
def test_defect_scale_reports_width_and_what_a_squash_loses(tmp_path, layout, width, min_lost):
    from autonad.data import TransformConfig
    from autonad.data.stats import defect_scale

    source = _lines(tmp_path, layout, width)
    squash = defect_scale(source, TransformConfig(size=(128, 128)))
    assert squash["defect_width_px"][1] == width and squash["mode"] == "resize"
    assert squash["lost_share"] > min_lost  # squashed 2.5x vertically, a 1-px line mostly misses the kept rows
    native = defect_scale(source, TransformConfig(size=(128, 128), scale=1.0))
    assert native["lost_share"] == 0.0 and native["mode"] == "crops"
    half = defect_scale(source, TransformConfig(size=(128, 128), scale=0.5))
    assert half["lost_share"] > 0  # resampling by 0.5 and back drops rows too
