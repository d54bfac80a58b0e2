from __future__ import annotations

import json
from collections import Counter

import pytest

from autonad.data import SPLITS, open_dataset, read_split, stratified_split
from autonad.data.split import _allocate, plan_splits
from autonad.errors import AutoNADError

KEYS = {f"s{i:03d}": k for i, k in enumerate(["a"] * 20 + ["b"] * 10 + ["c"] * 3 + ["defect-free"] * 67)}
IDS = list(KEYS)
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def test_deterministic_and_seeded():
    first = stratified_split(IDS, KEYS, FRACTIONS, seed=5)
    assert first == stratified_split(IDS, KEYS, FRACTIONS, seed=5)
    assert first != stratified_split(IDS, KEYS, FRACTIONS, seed=6)


def test_disjoint_covering_stratified():
    parts = stratified_split(IDS, KEYS, FRACTIONS, seed=0)
    everything = [i for part in parts.values() for i in part]
    assert sorted(everything) == sorted(IDS) and len(set(everything)) == len(IDS)
    for name, part in parts.items():
        assert set(Counter(KEYS[i] for i in part)) == {"a", "b", "c", "defect-free"}, name  # even c (3 samples)
        assert part == [i for i in IDS if i in set(part)]  # original order kept
    assert [len(parts[s]) for s in SPLITS] == [69, 16, 15]
    assert Counter(KEYS[i] for i in parts["train"])["a"] == 14


@pytest.mark.parametrize("n", range(0, 12))
def test_allocate_sums_and_fills_every_part(n):
    counts = _allocate(n, [0.7, 0.15, 0.15])
    assert sum(counts) == n
    if n >= 3:
        assert min(counts) >= 1


def test_plan_carves_only_missing_splits():
    official = {"train": IDS[:80], "test": IDS[80:]}
    splits, origin = plan_splits(IDS, official, lambda ids: {i: KEYS[i] for i in ids}, seed=0)
    assert splits["test"] == IDS[80:]
    assert sorted(splits["train"] + splits["val"]) == sorted(IDS[:80])
    assert 11 <= len(splits["val"]) <= 13 and origin.startswith("official train/test; val (15%) carved")
    full = {"train": IDS[:60], "val": IDS[60:80], "test": IDS[80:]}
    assert plan_splits(IDS, full, None, seed=0) == (full, "official")


def test_save_and_reuse_exactly(make_mt, tmp_path):
    root = make_mt()
    source = open_dataset("mt", data_root=root, seed=3)
    path = source.save_split(tmp_path / "run" / "split.json")
    record = json.loads(path.read_text())
    assert record["dataset"] == "mt" and record["seed"] == 3 and record["root"] == str(root.resolve())
    assert record["splits"] == source.splits
    again = open_dataset("mt", data_root=root, seed=99, split_file=path)
    assert again.splits == source.splits
    assert again.split_origin.endswith(f"(from {path})")
    assert read_split(path)["counts"] == {s: len(source.splits[s]) for s in SPLITS}


def test_reused_split_must_match_the_dataset(make_mt, make_neu, tmp_path):
    path = open_dataset("mt", data_root=make_mt()).save_split(tmp_path / "split.json")
    with pytest.raises(AutoNADError, match="split is for dataset 'mt', not 'neu-seg'"):
        open_dataset("neu-seg", data_root=make_neu(), split_file=path)
    record = json.loads(path.read_text())
    record["splits"]["test"].append("MT_Free/nope")
    path.write_text(json.dumps(record))
    with pytest.raises(AutoNADError, match=r"split\.json: sample 'MT_Free/nope' \(test\) is not in dataset mt"):
        open_dataset("mt", data_root=make_mt(tmp_path / "mt2"), split_file=path)


def test_split_file_problems_name_the_file(tmp_path):
    bad = tmp_path / "split.json"
    bad.write_text("{not json")
    with pytest.raises(AutoNADError, match=r"split\.json: not a readable split file"):
        read_split(bad)
    bad.write_text(json.dumps({"splits": {"train": ["a"], "val": ["a"], "test": ["b"]}}))
    with pytest.raises(AutoNADError, match=r"sample 'a' is in both 'train' and 'val'"):
        read_split(bad)
