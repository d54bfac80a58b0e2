from __future__ import annotations

import numpy as np
import pytest

from autonad.data import open_dataset
from autonad.errors import AutoNADError


def test_ksdd2_official_layout(make_ksdd2):
    root = make_ksdd2()
    source = open_dataset("ksdd2", data_root=root)
    assert source.classes == ["background", "defect"]
    assert source.official["train"] == [f"train/1000{i}" for i in range(6)]
    assert source.official["test"] == ["test/20000", "test/20001", "test/20002"]
    image, mask = source.load("train/10000")
    assert image.shape == (30, 12, 3) and image.dtype == np.uint8
    assert mask.dtype == np.int64 and set(np.unique(mask)) == {0, 1}
    assert mask[5:9, 2:6].all() and mask[20, 7] == 1  # 255 in one channel only is a defect too
    assert mask.sum() == 17
    assert not source.load_mask("train/10005").any()


def test_ksdd2_val_carved_from_train_test_untouched(make_ksdd2):
    source = open_dataset("ksdd2", data_root=make_ksdd2(), seed=1)
    splits = source.splits
    assert splits["test"] == source.official["test"]
    assert sorted(splits["train"] + splits["val"]) == sorted(source.official["train"])
    assert splits["val"] and not set(splits["val"]) & set(splits["train"])
    assert "val (15%) carved from official train" in source.split_origin
    positives = {i for i in source.official["train"] if source.present(i)}
    assert positives & set(splits["val"]) and positives & set(splits["train"])  # stratified


def test_ksdd2_image_without_gt_names_the_expected_mask(make_ksdd2):
    root = make_ksdd2()
    (root / "test" / "20001_GT.png").unlink()
    with pytest.raises(AutoNADError, match=r"test/20001\.png: image has no mask \(expected .*test/20001_GT\.png\)"):
        open_dataset("ksdd2", data_root=root)
    source = open_dataset("ksdd2", data_root=root, skip_bad=True)
    assert source.splits["test"] == ["test/20000", "test/20002"] and len(source.bad) == 1
