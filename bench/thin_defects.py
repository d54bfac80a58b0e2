"""A small thin-defect dataset in AutoNAD's `folder:` layout, for the learning issue's thin-defect
demonstration: scratches 1-3 px wide at 480x320, faint enough that squashing the image to 128x128
erases them, so only training at (near) native scale can learn them.

Textured grey surfaces (smoothed noise, a gradient, faint periodic machining marks, grain), ~30%
defect-free, the rest with one or more low-contrast scratches (straight or curved polylines of
40-250 px) and pits (blobs of radius 2-6 px). Each image comes from (seed, index) alone, so the same
seed gives byte-identical files.

    python bench/thin_defects.py --out data/thin --n 80 --seed 0 --size 480x320

writes DIR/images/NNNN.png (RGB), DIR/masks/NNNN.png (class ids: 0 background, 1 scratch, 2 pit)
and DIR/classes.txt; open it with `folder:DIR`.
"""

from __future__ import annotations

import argparse
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from autonad.data.base import Sample, SegSource
from autonad.data.folder import write_folder

CLASSES = ["background", "scratch", "pit"]
SCRATCH, PIT = 1, 2
DEFECT_FREE = 0.3
SCRATCH_SHARE = 0.65  # of the defects; the rest are pits


def write_thin_defects(out: Path, n: int = 80, seed: int = 0, size: tuple[int, int] = (320, 480)) -> Path:
    """Write `n` samples of `size` (H, W) to `out` in the folder layout; returns `out`."""
    return write_folder(ThinDefects(n, seed, size), Path(out))


class ThinDefects(SegSource):
    """The generated samples as a dataset (ids "0000", "0001", ...), so `write_folder` can write them."""

    def __init__(self, n: int, seed: int, size: tuple[int, int]):
        where = Path(f"<thin-defects seed={seed}>")
        samples = [Sample(f"{i:04d}", where / f"{i:04d}.png", where / f"{i:04d}_mask.png") for i in range(n)]
        super().__init__("thin-defects", None, CLASSES, samples, seed=seed)
        self.size = (int(size[0]), int(size[1]))

    def load_image(self, sample_id: str) -> np.ndarray:
        return render(self.seed, int(sample_id), self.size)[0].copy()

    def load_mask(self, sample_id: str) -> np.ndarray:
        return render(self.seed, int(sample_id), self.size)[1].astype(np.int64)

    def image_size(self, sample_id: str) -> tuple[int, int]:
        return self.size


@lru_cache(maxsize=2)
def render(seed: int, index: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One sample: (HxWx3 uint8 image, HxW uint8 mask of class ids)."""
    rng = np.random.default_rng([seed, index])
    h, w = size
    grey = _surface(rng, h, w)
    mask = np.zeros((h, w), np.uint8)
    count = 0 if rng.random() < DEFECT_FREE else 1 + min(int(rng.poisson(0.8)), 3)
    for _ in range(count):
        cls = SCRATCH if rng.random() < SCRATCH_SHARE else PIT
        layer = Image.new("L", (w, h), 0)
        (_scratch if cls == SCRATCH else _pit)(ImageDraw.Draw(layer), rng, h, w)
        drawn = np.asarray(layer) > 0
        mask[drawn] = cls  # the mask is exactly the drawn pixels
        alpha = np.asarray(layer.filter(ImageFilter.GaussianBlur(0.5)), np.float32) / 255.0  # soft in the image only
        alpha = np.maximum(alpha, 0.6 * drawn)
        grey += _contrast(rng, cls) * alpha
    tint = (1.0 + rng.uniform(-0.04, 0.04, 3)).astype(np.float32)
    image = np.clip(grey[..., None] * tint * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, mask


def _surface(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Grey level in [0, 1]: base + gradient + smoothed noise + machining marks + grain."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    along = (xx * math.cos(angle) + yy * math.sin(angle)) / max(h, w)
    grey = rng.uniform(0.35, 0.65) + rng.uniform(0, 0.15) * along
    cells = int(rng.integers(3, 10))
    coarse = Image.fromarray(rng.standard_normal((cells, cells)).astype(np.float32), mode="F")
    grey = grey + rng.uniform(0.02, 0.06) * np.asarray(coarse.resize((w, h), Image.BICUBIC))
    mark = rng.uniform(0, math.pi)  # direction across the marks
    phase = 2 * math.pi * (xx * math.cos(mark) + yy * math.sin(mark)) / rng.uniform(5, 18)
    grey = grey + rng.uniform(0.004, 0.02) * (np.sin(phase) + 0.4 * np.sin(2 * phase + rng.uniform(0, 6)))
    grey = grey + rng.normal(0, rng.uniform(0.006, 0.02), (h, w))
    return grey.astype(np.float32)


def _contrast(rng: np.random.Generator, cls: int) -> float:
    """Signed grey-level change under a defect: low for scratches (either sign), a bit more for pits (darker)."""
    if cls == SCRATCH:
        return rng.uniform(0.04, 0.10) * (1 if rng.random() < 0.5 else -1)
    return -rng.uniform(0.08, 0.2)


def _scratch(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int) -> None:
    """A 1-3 px polyline of 40-250 px through a point inside the image, straight or gently curved."""
    length = rng.uniform(40, 250)
    bend = 0.0 if rng.random() < 0.4 else rng.normal(0, 0.12)  # turn per segment, radians
    segments = 10
    step = length / segments
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * math.pi)
    x, y = x - length / 2 * math.cos(angle), y - length / 2 * math.sin(angle)  # roughly centred on (x, y)
    points = [(x, y)]
    for _ in range(segments):
        x, y = x + step * math.cos(angle), y + step * math.sin(angle)
        angle += bend
        points.append((x, y))
    draw.line(points, fill=255, width=int(rng.integers(1, 4)), joint="curve")


def _pit(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int) -> None:
    """A small, slightly elliptical blob of radius 2-6 px."""
    radius = rng.uniform(2, 6)
    rx, ry = radius * rng.uniform(0.8, 1.2, 2)
    cx, cy = rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--n", type=int, default=80, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="480x320", help="WIDTHxHEIGHT")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = write_thin_defects(args.out, args.n, args.seed, (height, width))
    print(f"{root}: {args.n} images of {width}x{height}; open with folder:{root}")


if __name__ == "__main__":
    main()
