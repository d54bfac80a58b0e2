from __future__ import annotations

import numpy as np
import pytest

from autonad.data import open_dataset
from autonad.errors import AutoNADError


def test_binary_0_255_masks_are_background_and_defect(make_folder):
    source = open_dataset(f"folder:{make_folder()}")
    assert source.classes == ["background", "defect"]
    assert len(source.ids) == 12 and "part00" in source.ids and "part01" in source.ids  # .jpg and .png images
    _, mask = source.load("part01")
    assert set(np.unique(mask)) == {0, 1} and mask.sum() == 25


def test_class_index_masks_with_classes_txt(make_folder):
    source = open_dataset(f"folder:{make_folder(classes=['background', 'dent', 'rust'])}")
    assert source.classes == ["background", "dent", "rust"]
    assert set(np.unique(source.load_mask("part02"))) == {0, 1}
    assert set(np.unique(source.load_mask("part01"))) == {0, 2}


def test_split_files_are_official_and_missing_ones_carved(make_folder):
    root = make_folder(n=20)
    (root / "test.txt").write_text("part00\npart01\npart02\n")
    source = open_dataset(f"folder:{root}")
    assert source.splits["test"] == ["part00", "part01", "part02"]
    assert sorted(source.splits["train"] + source.splits["val"]) == [f"part{i:02d}" for i in range(3, 20)]
    assert "carved from the samples in no official split" in source.split_origin


def test_with_train_txt_every_image_must_be_listed(make_folder):
    root = make_folder(n=6)
    (root / "train.txt").write_text("part00\npart01\npart02\n")
    (root / "val.txt").write_text("part03\n")
    (root / "test.txt").write_text("part04\n")
    with pytest.raises(AutoNADError, match=r"part05\.png: not listed in any of train\.txt, val\.txt, test\.txt"):
        open_dataset(f"folder:{root}")


def test_greyscale_masks_are_not_taken_for_class_ids(make_folder, layout):
    root = make_folder(n=3)
    layout.save(np.arange(14 * 18, dtype=np.uint8).reshape(14, 18), root / "masks" / "part00.png")
    with pytest.raises(AutoNADError, match=r"masks: mask values go up to 251, which does not look like class ids"):
        open_dataset(f"folder:{root}")


def test_write_folder_round_trips_any_source(tmp_path):
    import numpy as np

    from autonad.data import SyntheticSource, open_dataset
    from autonad.data.folder import write_folder

    source = SyntheticSource(n=6, size=32, seed=2)
    folder = open_dataset(f"folder:{write_folder(source, tmp_path / 'copy')}")
    assert list(folder.classes) == list(source.classes) and sorted(folder.ids) == sorted(source.ids)
    for sample_id in source.ids:
        (image, mask), (image2, mask2) = source.load(sample_id), folder.load(sample_id)
        assert np.array_equal(image, image2) and np.array_equal(mask, mask2)
