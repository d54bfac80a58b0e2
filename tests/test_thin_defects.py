"""bench/thin_defects.py: the thin-defect dataset opens as `folder:`, its scratches are thin, and it is
deterministic."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from thin_defects import write_thin_defects  # noqa: E402

from autonad.data import open_dataset

SIZE = (160, 240)  # (H, W)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _near_background(mask: np.ndarray, reach: int = 2) -> np.ndarray:
    """True where a pixel outside `mask` lies within `reach` px (a (2*reach+1)^2 window)."""
    h, w = mask.shape
    padded = np.pad(mask, reach, constant_values=False)
    inside = np.ones_like(mask)
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            inside &= padded[dy : dy + h, dx : dx + w]
    return ~inside


def test_opens_as_folder_with_thin_scratches_and_pits(tmp_path):
    root = write_thin_defects(tmp_path / "thin", n=6, seed=0, size=SIZE)
    source = open_dataset(f"folder:{root}")
    assert source.classes == ["background", "scratch", "pit"]
    infos = source.verify()
    assert len(infos) == 6 and all((i.height, i.width) == SIZE for i in infos)
    assert any(i.pixels[1] for i in infos) and any(i.pixels[2] for i in infos)
    for sample_id in source.ids:
        image, mask = source.load(sample_id)
        assert image.dtype == np.uint8 and image.shape == (*SIZE, 3)
        assert Image.open(root / "masks" / f"{sample_id}.png").mode == "L"
        scratch = mask == 1
        if scratch.any():  # 1-3 px wide: nearly every scratch pixel has background within 2 px
            assert _near_background(scratch)[scratch].mean() > 0.95


def test_same_seed_same_bytes(tmp_path):
    a = _files(write_thin_defects(tmp_path / "a", n=3, seed=5, size=SIZE))
    b = _files(write_thin_defects(tmp_path / "b", n=3, seed=5, size=SIZE))
    c = _files(write_thin_defects(tmp_path / "c", n=3, seed=6, size=SIZE))
    assert len(a) == 3 * 2 + 1 and a == b
    assert a != c
