"""Builders that write tiny datasets in the exact official on-disk layouts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128] + [0] * (3 * 250) + [224, 224, 192]


def noise(rng: np.random.Generator, h: int, w: int, channels: int = 3) -> np.ndarray:
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def box_mask(h: int, w: int, value: int, top: int = 2, left: int = 3, size: int = 5) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[top : top + size, left : left + size] = value
    return mask


def save(array: np.ndarray, path: Path, mode: str | None = None, palette: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array, mode)
    if palette is not None:
        image.putpalette(palette)
    image.save(path)
    return path


@pytest.fixture
def make_ksdd2(tmp_path):
    """train/ (6 images, 3 defective) and test/ (3 images, 1 defective), 3-channel *_GT.png masks."""

    def make(root: Path = tmp_path / "ksdd2") -> Path:
        rng = np.random.default_rng(0)
        for split, n, positives in (("train", 6, 3), ("test", 3, 1)):
            for i in range(n):
                stem = f"{10000 * (1 if split == 'train' else 2) + i:05d}"
                save(noise(rng, 30, 12), root / split / f"{stem}.png")
                gt = np.zeros((30, 12, 3), np.uint8)
                if i < positives:
                    gt[5:9, 2:6] = 255
                    gt[20, 7, 1] = 255  # a defect pixel in one channel only still counts
                save(gt, root / split / f"{stem}_GT.png")
        return root

    return make


MT_COUNTS = {"Blowhole": 3, "Break": 3, "Crack": 3, "Fray": 3, "Uneven": 3, "Free": 5}


@pytest.fixture
def make_mt(tmp_path):
    """MT_<Class>/Imgs/<stem>.jpg (greyscale, sizes vary) + <stem>.png with anti-aliased 0/255 masks."""

    def make(root: Path = tmp_path / "mt") -> Path:
        rng = np.random.default_rng(1)
        for k, (name, n) in enumerate(MT_COUNTS.items()):
            imgs = root / f"MT_{name}" / "Imgs"
            for i in range(n):
                h, w = 20 + i, 16 + 2 * k
                save(noise(rng, h, w, 1), imgs / f"exp{k}_num_{i}.jpg")
                mask = np.zeros((h, w), np.uint8)
                if name != "Free" and not (name == "Uneven" and i == 0):  # one empty Uneven mask, as in MT
                    mask[4:10, 4:10] = 100  # anti-aliased edge below 128: background
                    mask[5:9, 5:9] = 200  # above 128: defect
                    mask[6:8, 6:8] = 255
                save(mask, imgs / f"exp{k}_num_{i}.png")
        return root

    return make


@pytest.fixture
def make_neu(tmp_path):
    """images/{training,test}/*.jpg + annotations/{training,test}/*.png; stems repeat across folders."""

    def make(root: Path = tmp_path / "neu") -> Path:
        rng = np.random.default_rng(2)
        for sub, n in (("training", 9), ("test", 3)):
            for i in range(n):
                stem = f"{i + 1:06d}"
                save(noise(rng, 16, 16), root / "images" / sub / f"{stem}.jpg")
                save(box_mask(16, 16, 1 + i % 3), root / "annotations" / sub / f"{stem}.png")
        return root

    return make


@pytest.fixture
def make_voc(tmp_path):
    """JPEGImages/, palette-mode SegmentationClass/ (255 void border), ImageSets/Segmentation/*.txt."""

    def make(root: Path = tmp_path / "voc", classes: list[str] | None = None, sets: bool = True, n: int = 10) -> Path:
        rng = np.random.default_rng(3)
        ids = [f"img_{i:03d}" for i in range(n)]
        for i, stem in enumerate(ids):
            save(noise(rng, 18, 22), root / "JPEGImages" / f"{stem}.jpg")
            mask = box_mask(18, 22, 1 + i % 3, top=4, left=4, size=6)
            mask[0, :] = 255  # VOC void
            save(mask, root / "SegmentationClass" / f"{stem}.png", "P", VOC_PALETTE)
        if sets:
            sets_dir = root / "ImageSets" / "Segmentation"
            sets_dir.mkdir(parents=True)
            cut = [0, n * 6 // 10, n * 8 // 10, n]
            for k, split in enumerate(("train", "val", "test")):
                (sets_dir / f"{split}.txt").write_text("\n".join(ids[cut[k] : cut[k + 1]]) + "\n")
        if classes is not None:
            (root / "classes.txt").write_text("\n".join(classes) + "\n")
        return root

    return make


@pytest.fixture
def make_folder(tmp_path):
    """images/ + masks/ with matching stems (mixed extensions); binary 0/255 masks by default."""

    def make(root: Path = tmp_path / "folder", n: int = 12, classes: list[str] | None = None) -> Path:
        rng = np.random.default_rng(4)
        for i in range(n):
            ext = ".png" if i % 2 else ".jpg"
            save(noise(rng, 14, 18), root / "images" / f"part{i:02d}{ext}")
            value = (1 + i % (len(classes) - 1)) if classes else 255
            mask = box_mask(14, 18, value) if i % 3 else np.zeros((14, 18), np.uint8)
            save(mask, root / "masks" / f"part{i:02d}.png")
        if classes is not None:
            (root / "classes.txt").write_text("\n".join(classes) + "\n")
        return root

    return make


@pytest.fixture
def layout() -> SimpleNamespace:
    """The helpers above, for tests that damage or extend a layout (conftest is not importable)."""
    return SimpleNamespace(save=save, box_mask=box_mask, noise=noise, VOC_PALETTE=VOC_PALETTE, MT_COUNTS=MT_COUNTS)
