"""The one transform pipeline: augmentation (train), resizing and normalisation (train and eval).

Train: random resize-crop -> quarter-turn rotation and flips -> resize to the input size ->
brightness/contrast -> normalise. Eval: resize -> normalise. Masks are only ever cropped,
rotated, flipped and resized with NEAREST, so they keep exactly their class ids and 255.
Random draws use torch's generator (pass one, or the global one, which DataLoader workers seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from autonad.errors import AutoNADError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASPECT_JITTER = (3 / 4, 4 / 3)  # crop aspect ratio range, relative to the image's


@dataclass(frozen=True)
class TransformConfig:
    """Input size (H, W) and augmentation switches; mean/std in [0, 1] units (see `compute_norm_stats`)."""

    size: tuple[int, int] = (128, 128)
    hflip: bool = True
    vflip: bool = True
    rotate90: bool = True  # 0/90/180/270 degrees (applied before resizing, so non-square sizes work)
    resize_crop: tuple[float, float] | None = (0.5, 1.0)  # area fraction range of the random crop; None = off
    brightness: float = 0.2  # factor drawn from [1 - b, 1 + b]; 0 = off
    contrast: float = 0.2  # factor drawn from [1 - c, 1 + c]; 0 = off
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: Literal["bilinear", "nearest"] = "bilinear"  # images only; masks are always nearest

    def __post_init__(self):
        if min(self.size) < 1:
            raise AutoNADError(f"size: must be positive, got {self.size}")
        if self.resize_crop is not None and not 0 < self.resize_crop[0] <= self.resize_crop[1] <= 1:
            raise AutoNADError(f"resize_crop: need 0 < min <= max <= 1, got {self.resize_crop}")
        if not (0 <= self.brightness < 1 and 0 <= self.contrast < 1):
            raise AutoNADError("brightness/contrast: must be in [0, 1)")
        if min(self.std) <= 0:
            raise AutoNADError(f"std: must be positive, got {self.std}")


@dataclass(frozen=True)
class Params:
    """One draw of the random augmentation. `rot` counts quarter-turns counter-clockwise (np.rot90)."""

    crop: tuple[int, int, int, int]  # top, left, height, width
    rot: int = 0
    hflip: bool = False
    vflip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0


class Transform:
    """(image HxWx3 uint8, mask HxW int) -> (float32 3xHxW normalised, int64 HxW)."""

    def __init__(self, config: TransformConfig | None = None, train: bool = False):
        self.config = config or TransformConfig()
        self.train = train

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.apply(image, mask, self.sample(image.shape[0], image.shape[1], generator))

    def sample(self, height: int, width: int, generator: torch.Generator | None = None) -> Params:
        """Random parameters for an image of this size (identity in eval mode)."""
        cfg = self.config
        if not self.train:
            return Params((0, 0, height, width))

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        def coin() -> bool:
            return bool(torch.rand((), generator=generator) < 0.5)

        crop = (0, 0, height, width)
        if cfg.resize_crop is not None:
            area = uniform(*cfg.resize_crop)
            aspect = math.exp(uniform(*(math.log(a) for a in ASPECT_JITTER)))
            ch = min(height, max(1, round(height * math.sqrt(area / aspect))))
            cw = min(width, max(1, round(width * math.sqrt(area * aspect))))
            top = int(torch.randint(0, height - ch + 1, (), generator=generator))
            left = int(torch.randint(0, width - cw + 1, (), generator=generator))
            crop = (top, left, ch, cw)
        return Params(
            crop=crop,
            rot=int(torch.randint(0, 4, (), generator=generator)) if cfg.rotate90 else 0,
            hflip=coin() if cfg.hflip else False,
            vflip=coin() if cfg.vflip else False,
            brightness=uniform(1 - cfg.brightness, 1 + cfg.brightness) if cfg.brightness else 1.0,
            contrast=uniform(1 - cfg.contrast, 1 + cfg.contrast) if cfg.contrast else 1.0,
        )

    def apply(self, image: np.ndarray, mask: np.ndarray, p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[:2] != mask.shape:
            raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
        top, left, h, w = p.crop
        image, mask = image[top : top + h, left : left + w], mask[top : top + h, left : left + w]
        image, mask = geometric(image, p), geometric(mask, p)
        image, mask = self._resize(image, mask)
        x = image.astype(np.float32) / 255.0
        if p.brightness != 1.0 or p.contrast != 1.0:
            x = x * p.brightness
            grey = x.mean()
            x = np.clip((x - grey) * p.contrast + grey, 0.0, 1.0)
        mean = np.asarray(self.config.mean, np.float32)
        std = np.asarray(self.config.std, np.float32)
        x = (x - mean) / std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), torch.from_numpy(mask.astype(np.int64))

    def _resize(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out_h, out_w = self.config.size
        if image.shape[:2] == (out_h, out_w):
            return np.ascontiguousarray(image), np.ascontiguousarray(mask)
        if mask.min() < 0 or mask.max() > 255:
            raise ValueError("mask values must be class ids 0..254 or 255 (ignore)")
        resample = Image.BILINEAR if self.config.interpolation == "bilinear" else Image.NEAREST
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((out_w, out_h), resample))
        small = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
        return image, np.asarray(small.resize((out_w, out_h), Image.NEAREST))


def geometric(array: np.ndarray, p: Params) -> np.ndarray:
    """Rotate by p.rot quarter-turns (counter-clockwise), then flip left-right / up-down."""
    array = np.rot90(array, p.rot, axes=(0, 1))
    if p.hflip:
        array = array[:, ::-1]
    if p.vflip:
        array = array[::-1]
    return array
