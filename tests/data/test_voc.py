from __future__ import annotations

import numpy as np
import pytest

from autonad.data import open_dataset
from autonad.errors import AutoNADError


def test_voc_palette_indices_are_class_ids_and_void_is_kept(make_voc):
    root = make_voc(classes=["background", "oil", "scratch", "stain"])
    source = open_dataset(f"voc:{root}")
    assert source.classes == ["background", "oil", "scratch", "stain"]
    _, mask = source.load("img_001")
    assert set(np.unique(mask)) == {0, 2, 255}
    assert (mask[0] == 255).all() and (mask[4:10, 4:10] == 2).all()
    assert source.split_origin == "" and source.splits["val"] == ["img_006", "img_007"]
    assert source.split_origin == "official"


def test_voc_classes_from_masks_without_classes_txt(make_voc):
    source = open_dataset(f"voc:{make_voc()}")
    assert source.classes == ["background", "class_1", "class_2", "class_3"]


def test_msd_is_voc_with_its_classes(make_voc, tmp_path):
    root = make_voc(root=tmp_path / "msd")
    source = open_dataset("msd", data_root=root)
    assert source.name == "msd"
    assert source.classes == ["background", "oil", "scratch", "stain"]
    assert [len(source.splits[s]) for s in ("train", "val", "test")] == [6, 2, 2]


def test_voc_without_image_sets_carves_a_split(make_voc):
    source = open_dataset(f"voc:{make_voc(sets=False, n=20)}", seed=3)
    assert source.split_origin == ""
    assert sorted(sum(source.splits.values(), [])) == source.ids
    assert source.split_origin.startswith("generated 70/15/15")


def test_voc_rejects_palette_indices_that_are_not_class_ids(make_voc, layout):
    root = make_voc(classes=["background", "oil", "scratch", "stain"])
    mask = layout.box_mask(18, 22, 14)  # a colour index, not one of the 4 class ids
    layout.save(mask, root / "SegmentationClass" / "img_003.png", "P", layout.VOC_PALETTE)
    source = open_dataset(f"voc:{root}")
    with pytest.raises(AutoNADError, match=r"img_003\.png: mask value 14 outside the class ids 0\.\.3.*palette"):
        source.load("img_003")


def test_voc_split_list_naming_a_missing_image(make_voc):
    root = make_voc()
    with open(root / "ImageSets" / "Segmentation" / "test.txt", "a") as f:
        f.write("ghost\n")
    with pytest.raises(AutoNADError, match=r"test\.txt: lists 'ghost' but JPEGImages/ has no such image"):
        open_dataset(f"voc:{root}")
    source = open_dataset(f"voc:{root}", skip_bad=True)
    assert "ghost" not in source.splits["test"] and len(source.bad) == 1
