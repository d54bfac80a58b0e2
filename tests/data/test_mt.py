from __future__ import annotations

import numpy as np
import pytest

from autonad.data import open_dataset
from autonad.errors import AutoNADError


def test_mt_layout_classes_and_binarisation(make_mt, layout):
    source = open_dataset("mt", data_root=make_mt())
    assert source.classes == ["background", "Blowhole", "Break", "Crack", "Fray", "Uneven"]
    assert len(source.ids) == sum(layout.MT_COUNTS.values())
    assert "MT_Crack/exp2_num_1" in source.ids
    image, mask = source.load("MT_Crack/exp2_num_1")
    assert image.shape == (21, 20, 3) and image.dtype == np.uint8  # greyscale -> RGB
    assert (image[..., 0] == image[..., 1]).all()
    expected = np.zeros_like(mask)
    expected[5:9, 5:9] = 3  # >= 128 only, class from the folder
    assert (mask == expected).all()
    assert not source.load_mask("MT_Free/exp5_num_0").any()
    assert not source.load_mask("MT_Uneven/exp4_num_0").any()


def test_mt_generated_split_is_stratified_by_folder(make_mt, layout):
    source = open_dataset("mt", data_root=make_mt(), seed=0)
    assert source.official == {}
    assert source.split_origin == ""
    splits = source.splits
    assert source.split_origin.startswith("generated 70/15/15")
    for folder in layout.MT_COUNTS:
        for name in ("train", "val", "test"):
            assert any(i.startswith(f"MT_{folder}/") for i in splits[name]), (folder, name)
    assert sorted(sum(splits.values(), [])) == sorted(source.ids)


def test_mt_mask_without_image_and_unknown_folder(make_mt):
    root = make_mt()
    (root / "MT_Fray" / "Imgs" / "exp3_num_1.jpg").unlink()
    with pytest.raises(AutoNADError, match=r"MT_Fray/Imgs/exp3_num_1\.png: mask has no image"):
        open_dataset("mt", data_root=root)
    (root / "MT_Dent" / "Imgs").mkdir(parents=True)
    with pytest.raises(AutoNADError, match=r"MT_Dent: unknown Magnetic Tile class folder"):
        open_dataset("mt", data_root=root, skip_bad=True)
