"""Evaluation on images of mixed sizes: the loader batches by size, each sample keeps its own name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from autonad.data import open_dataset
from autonad.decision import Decision
from autonad.export.inference import ExportedModel, accumulate_model
from autonad.space import HeadsArch
from autonad.supernet import Supernet, SupernetConfig


@pytest.fixture
def mixed_sizes(tmp_path):
    """12 images, alternately 40x40 and 64x48, image i with a defect square of i+1 pixels a side."""
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(12):
        h, w = (40, 40) if i % 2 else (64, 48)
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[2 : 3 + i, 2 : 3 + i] = 1
        Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(tmp_path / "images" / f"s{i:02d}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"s{i:02d}.png")
    (tmp_path / "classes.txt").write_text("background\ndefect\n")
    return open_dataset(f"folder:{tmp_path}", None)


def test_each_evaluated_sample_is_named_by_the_image_it_came_from(mixed_sizes):
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.load("tiny"), num_classes=2).eval()
    model = net.extract(net.space.smallest(heads=HeadsArch()))
    meta = {"classes": ["background", "defect"], "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3},
            "input_size": [32, 32], "scale": 1.0, "pad_to": 32, "outputs": "seg"}  # fmt: skip
    exported = ExportedModel(model, meta, mixed_sizes.root / "model.ts")
    split = "train"  # the largest split: both sizes, interleaved
    metrics = accumulate_model(exported, mixed_sizes, split, 4, Decision(min_area=1))
    rows = metrics.sample_rows()
    names = [metrics.sample_ids[p] for p in rows["position"]]
    assert sorted(names) == sorted(mixed_sizes.splits[split]) and names != sorted(names)  # batched by size
    side = {n: int(n[1:]) + 1 for n in names}
    assert [int(g) for g in rows["gt"]] == [side[n] ** 2 for n in names]  # each row is its own image's mask
