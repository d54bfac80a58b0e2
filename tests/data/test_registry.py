from __future__ import annotations

import pytest

from autonad.data import DATASETS, open_dataset
from autonad.errors import AutoNADError


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(AutoNADError, match=r"unknown dataset 'kolektor' \(known: synthetic, ksdd2, mt, neu-seg, msd"):
        open_dataset("kolektor")
    assert set(DATASETS) >= {"synthetic", "ksdd2", "mt", "neu-seg", "msd", "voc:<root>", "folder:<root>"}


def test_roots_from_autonad_data_with_folder_aliases(make_mt, tmp_path, monkeypatch):
    make_mt(tmp_path / "datasets" / "magnetic_tile")
    monkeypatch.setenv("AUTONAD_DATA", str(tmp_path / "datasets"))
    assert open_dataset("mt").root == (tmp_path / "datasets" / "magnetic_tile").resolve()
    with pytest.raises(AutoNADError, match=r"datasets/ksdd2: dataset root not found for 'ksdd2'.*AUTONAD_DATA"):
        open_dataset("ksdd2")


def test_default_root_is_data_under_the_working_dir(make_neu, tmp_path, monkeypatch):
    monkeypatch.delenv("AUTONAD_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    make_neu(tmp_path / "data" / "neu-seg")
    assert open_dataset("neu-seg").root == (tmp_path / "data" / "neu-seg").resolve()


def test_rooted_names(make_folder, tmp_path):
    root = make_folder()
    assert open_dataset("folder", data_root=root).root == root.resolve()
    with pytest.raises(AutoNADError, match="needs a root folder: voc:<root>"):
        open_dataset("voc")
    with pytest.raises(AutoNADError, match="not both"):
        open_dataset(f"folder:{root}", data_root=root)
    with pytest.raises(AutoNADError, match=r"JPEGImages: folder not found \(VOC layout"):
        open_dataset(f"voc:{root}")


def test_skip_bad_drops_and_lists(make_folder, layout):
    root = make_folder()
    (root / "masks" / "part03.png").unlink()
    (root / "images" / "part05.png").write_bytes(b"garbage")
    source = open_dataset(f"folder:{root}", skip_bad=True)
    assert "part03" not in source.ids and "part05" not in source.ids and len(source.ids) == 10
    assert len(source.bad) == 2
    assert any("part03.png: image has no mask" in m for m in source.bad)
    assert any("part05.png: unreadable or corrupt image" in m for m in source.bad)
    assert sorted(sum(source.splits.values(), [])) == sorted(source.ids)
