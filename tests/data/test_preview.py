from __future__ import annotations

import numpy as np
from PIL import Image

from autonad.data import SyntheticSource
from autonad.data.preview import TILE, class_colour, pick_samples, render_preview


def test_defective_samples_come_first():
    source = SyntheticSource(n=80, size=32)
    ids = pick_samples(source, "train", 8)
    flags = [bool(source.present(i)) for i in ids]
    assert len(ids) == 8 and flags == sorted(flags, reverse=True)
    assert sum(flags) == 6  # 3/4 defective when there are enough


def test_grid_has_overlays_and_legend(tmp_path):
    source = SyntheticSource(n=80, size=32)
    ids = pick_samples(source, "train", 4)
    out = render_preview(source, ids, tmp_path / "sub" / "grid.png", title="t")
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape[1] == 2 * TILE and grid.shape[0] > 2 * TILE
    legend = grid[-28:]
    for class_id in (1, 2, 3):  # a swatch per defect class
        assert (legend == class_colour(class_id)).all(axis=2).sum() >= 100
