"""The built-in `synthetic` dataset: textured surfaces with scratches, spots and cracks.

Every sample is generated from (seed, index) alone, so any image can be made on demand, the same
bytes every time, and another seed gives another dataset. Defaults: 500 RGB images of 128x128,
~70% defect-free, 1-3 defects on the others. Defect sizes are Pareto-distributed (many tiny
defects, few large ones), as on real production lines. Generating all 500 takes about a second on
one core; generated samples are cached in memory (~33 MB).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from autonad.data.base import Problems, Sample, SampleInfo, SegSource, classes_in

CLASSES = ["background", "scratch", "spot", "crack"]
DEFAULT_N = 500
DEFAULT_SIZE = 128
DEFECT_FREE_SHARE = 0.7
CLASS_WEIGHTS = (0.4, 0.35, 0.25)  # scratch, spot, crack
TAIL = 1.3  # Pareto shape of defect sizes: smaller = heavier tail


class SyntheticSource(SegSource):
    """`n` generated samples of `size`x`size` pixels; ids are zero-padded indices ("0042")."""

    def __init__(
        self,
        n: int = DEFAULT_N,
        size: int = DEFAULT_SIZE,
        seed: int = 0,
        defect_free: float = DEFECT_FREE_SHARE,
        problems: Problems | None = None,
    ):
        where = Path(f"<synthetic seed={seed}>")
        ids = [f"{i:0{len(str(n - 1))}d}" for i in range(n)]
        samples = [Sample(i, where / f"{i}.png", where / f"{i}_mask.png") for i in ids]
        super().__init__("synthetic", None, CLASSES, samples, seed=seed, problems=problems)
        self.size = size
        self.defect_free = defect_free
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _generate(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        if sample_id not in self._cache:
            self.sample(sample_id)
            self._cache[sample_id] = render(self.seed, int(sample_id), self.size, self.defect_free)
        return self._cache[sample_id]

    def load_image(self, sample_id: str) -> np.ndarray:
        return self._generate(sample_id)[0].copy()

    def load_mask(self, sample_id: str) -> np.ndarray:
        mask = self._generate(sample_id)[1].astype(np.int64)
        self._present[sample_id] = classes_in(mask)
        return mask

    def image_size(self, sample_id: str) -> tuple[int, int]:
        return self.size, self.size

    def check_sample(self, sample_id: str) -> SampleInfo:
        image, mask = self.load(sample_id)
        return self._info(sample_id, image.shape[:2], mask)


def render(seed: int, index: int, size: int, defect_free: float = DEFECT_FREE_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """One sample: (HxWx3 uint8 image, HxW uint8 mask of class ids)."""
    rng = np.random.default_rng([seed, index])
    surface = _texture(rng, size)
    mask = np.zeros((size, size), np.uint8)
    if rng.random() >= defect_free:
        for _ in range(1 + min(int(rng.poisson(0.5)), 2)):
            cls = int(rng.choice(3, p=CLASS_WEIGHTS)) + 1
            layer = Image.new("L", (size, size), 0)
            DRAW[cls](ImageDraw.Draw(layer), rng, size)
            _stain(surface, layer, rng, cls)
            mask[np.asarray(layer) > 0] = cls
    image = np.clip(surface * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, mask


# ------------------------------------------------------------------------- surfaces


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    return yy, xx


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = Image.fromarray(rng.standard_normal((cells, cells)).astype(np.float32), mode="F")
    return np.asarray(coarse.resize((size, size), Image.BICUBIC))


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Grey-level surface (base level, gradient, blotches, grain or brushed streaks), lightly tinted."""
    yy, xx = _grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    grey = rng.uniform(0.3, 0.7) + rng.uniform(0, 0.2) * (xx * math.cos(angle) + yy * math.sin(angle))
    grey = grey + rng.uniform(0.02, 0.07) * _smooth_noise(rng, size, int(rng.integers(3, 9)))
    kind = int(rng.integers(3))
    if kind == 0:  # fine isotropic grain
        grey = grey + rng.normal(0, rng.uniform(0.01, 0.04), (size, size))
    elif kind == 1:  # brushed metal: streaks along one axis
        streaks = np.repeat(rng.normal(0, rng.uniform(0.01, 0.03), (size, 1)), size, axis=1)
        grey = grey + (streaks if rng.random() < 0.5 else streaks.T) + rng.normal(0, 0.008, (size, size))
    else:  # mottled
        grey = grey + 0.035 * _smooth_noise(rng, size, size // 4) + rng.normal(0, 0.01, (size, size))
    tint = 1.0 + rng.uniform(-0.06, 0.06, 3)
    return grey[..., None].astype(np.float32) * tint.astype(np.float32)


def _stain(surface: np.ndarray, layer: Image.Image, rng: np.random.Generator, cls: int) -> None:
    """Darken (or, for some scratches, brighten) the surface under a defect, with slightly soft edges."""
    alpha = np.asarray(layer.filter(ImageFilter.GaussianBlur(0.6)), np.float32) / 255.0
    delta = rng.uniform(0.2, 0.45) * (1 if cls == 1 and rng.random() < 0.5 else -1)
    surface += (delta * alpha)[..., None]


# ------------------------------------------------------------------------- defects


def _scale(rng: np.random.Generator) -> float:
    """Long-tailed size factor >= 1 (Pareto): mostly ~1-2, occasionally 10+."""
    return 1.0 + float(rng.pareto(TAIL))


def _scratch(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int) -> None:
    length = min(14.0 * _scale(rng), 1.4 * size)
    x, y = rng.uniform(0, size, 2)
    angle = rng.uniform(0, math.pi)
    bend = rng.normal(0, 0.15)
    points = [(x, y)]
    for _ in range(3):
        x, y = x + length / 3 * math.cos(angle), y + length / 3 * math.sin(angle)
        angle += bend
        points.append((x, y))
    draw.line(points, fill=255, width=2 if rng.random() < 0.6 else 3)


def _spot(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int) -> None:
    radius = min(4.0 * _scale(rng), size / 5)
    cx, cy = rng.uniform(radius, size - radius, 2)
    for _ in range(1 + int(rng.integers(3))):  # a few overlapping ellipses make an irregular blob
        rx, ry = radius * rng.uniform(0.6, 1.3, 2)
        ox, oy = rng.normal(0, radius / 3, 2)
        draw.ellipse((cx + ox - rx, cy + oy - ry, cx + ox + rx, cy + oy + ry), fill=255)


def _crack(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int) -> None:
    length = min(14.0 * _scale(rng), 1.5 * size)
    width = 2 if rng.random() < 0.5 else 3
    _walk(draw, rng, tuple(rng.uniform(0, size, 2)), rng.uniform(0, 2 * math.pi), length, width, branches=2)


def _walk(draw, rng, start: tuple[float, float], angle: float, length: float, width: int, branches: int) -> None:
    """A jagged polyline that sometimes forks (recursively, `branches` levels)."""
    x, y = start
    points = [(x, y)]
    travelled = 0.0
    while travelled < length:
        step = rng.uniform(2.0, 5.0)
        angle += rng.normal(0, 0.3)
        x, y = x + step * math.cos(angle), y + step * math.sin(angle)
        points.append((x, y))
        travelled += step
        if branches and length > 12 and rng.random() < 0.08:
            fork = angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
            _walk(draw, rng, (x, y), fork, (length - travelled) * rng.uniform(0.3, 0.7), 1, branches - 1)
    draw.line(points, fill=255, width=width, joint="curve")


DRAW = {1: _scratch, 2: _spot, 3: _crack}
