from __future__ import annotations

import numpy as np

from autonad.data import open_dataset


def test_neu_ids_carry_the_split_folder(make_neu):
    source = open_dataset("neu-seg", data_root=make_neu())
    assert source.classes == ["background", "inclusion", "patches", "scratches"]
    assert len(source.official["train"]) == 9 and len(source.official["test"]) == 3
    assert "training/000001" in source.ids and "test/000001" in source.ids  # same stem, two samples
    _, mask = source.load("training/000002")
    assert set(np.unique(mask)) == {0, 2}
    splits = source.splits
    assert splits["test"] == source.official["test"]
    assert sorted(splits["train"] + splits["val"]) == source.official["train"]
    for name in ("train", "val"):  # every class in train and val (3 images per class in training)
        assert {c for i in splits[name] for c in source.present(i)} == {1, 2, 3}
