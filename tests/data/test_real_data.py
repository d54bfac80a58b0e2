"""The two public datasets in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

import pytest

from autonad.data import open_dataset

pytestmark = pytest.mark.shared_data


def test_magnetic_tile(shared_datasets):
    source = open_dataset("mt", data_root=shared_datasets / "magnetic_tile")
    assert len(source.ids) == 1344 and source.num_classes == 6
    assert sum(1 for i in source.ids if source.present(i)) == 388  # reads every mask once
    splits = source.splits
    assert sorted(sum(splits.values(), [])) == sorted(source.ids)
    for name in ("Blowhole", "Break", "Crack", "Fray", "Uneven", "Free"):
        for part in splits.values():
            assert any(i.startswith(f"MT_{name}/") for i in part)
    image, mask = source.load(splits["train"][0])
    assert image.ndim == 3 and image.shape[2] == 3 and image.shape[:2] == mask.shape


def test_neu_seg(shared_datasets):
    source = open_dataset("neu-seg", data_root=shared_datasets / "neu_seg")
    assert (len(source.official["train"]), len(source.official["test"])) == (3630, 840)
    assert source.num_classes == 4 and len(source.ids) == 4470
    assert "test/000201" in source.ids and "training/000201" in source.ids
    image, mask = source.load("test/000201")
    assert image.shape == (200, 200, 3) and mask.shape == (200, 200) and mask.max() <= 3
