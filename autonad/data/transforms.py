"""The one transform pipeline: augmentation (train), resizing and normalisation (train and eval).

Two ways to bring an image to the network (`TransformConfig.scale`):

- resize (``scale: null``): train on a random resize-crop squashed to ``size``; evaluate the
  whole image squashed to ``size``.
- crop (``scale: s``): images are resampled by ``s`` (1.0: native resolution) and trained on as
  ``size`` crops, a share of them (``defect_crops``) centred near a random defect pixel;
  evaluation runs on the whole resampled image, padded to a multiple of the network stride. Thin
  defects keep their width, which a squash to a small square would erase.

Train: crop window -> quarter-turn rotation and flips -> resize to the input size ->
brightness/contrast -> normalise. Masks are only ever cropped, padded (with 255 = ignore),
rotated, flipped and resized with NEAREST, so they keep exactly their class ids and 255.
Random draws use torch's generator (pass one, or the global one, which DataLoader workers seed).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from autonad.data.base import IGNORE  # padding's mask value (excluded from loss and metrics)
from autonad.errors import AutoNADError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASPECT_JITTER = (3 / 4, 4 / 3)  # crop aspect ratio range, relative to the image's
DEFECT_OFFSET = 0.35  # a defect crop's centre lies within +-this share of the crop of the defect pixel


@dataclass(frozen=True)
class TransformConfig:
    """Input size (H, W) and augmentation switches; mean/std in [0, 1] units (see `compute_norm_stats`).

    ``size`` is the network input in training: the squashed image (``scale`` None) or the crop
    (``scale`` set, then evaluation sees whole images at that scale, padded to ``pad_to``)."""

    size: tuple[int, int] = (128, 128)
    scale: float | None = None  # None: resize whole images to size; s: resample by s, train on size crops
    zoom: tuple[float, float] | None = None  # crop mode: random factor on scale (train only); None = off
    defect_crops: float = 0.0  # crop mode: share of training crops centred near a random defect pixel
    pad_to: int = 32  # crop mode, evaluation: pad whole images to a multiple of this (the network stride)
    hflip: bool = True
    vflip: bool = True
    rotate90: bool = True  # 0/90/180/270 degrees (applied before resizing, so non-square sizes work)
    resize_crop: tuple[float, float] | None = (0.5, 1.0)  # resize mode: area fraction range of the crop; None = off
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
        if self.scale is not None and not 0 < self.scale <= 8:
            raise AutoNADError(f"scale: must be in (0, 8], got {self.scale}")
        if self.zoom is not None and not 0 < self.zoom[0] <= self.zoom[1]:
            raise AutoNADError(f"zoom: need 0 < min <= max, got {self.zoom}")
        if not 0 <= self.defect_crops <= 1:
            raise AutoNADError(f"defect_crops: must be a share in [0, 1], got {self.defect_crops}")
        if self.pad_to < 1:
            raise AutoNADError(f"pad_to: must be at least 1, got {self.pad_to}")

    @property
    def crops(self) -> bool:
        """Crop mode: train on crops of resampled images, evaluate whole images (see the module doc)."""
        return self.scale is not None

    def eval_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) an image of this size is resampled to for evaluation (before padding)."""
        if not self.crops:
            return tuple(self.size)
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    def scale_info(self) -> dict:
        """What a model file records of how images reach the network: the training scale (None: images
        are resized to `size`) and the padding multiple of whole-image inference."""
        return {"scale": self.scale, "pad_to": self.pad_to}

    def inference(self) -> TransformConfig:
        """The same scale, size and normalisation with every augmentation off (what a model is used with)."""
        return dataclasses.replace(self, hflip=False, vflip=False, rotate90=False, resize_crop=None,
                                   zoom=None, brightness=0.0, contrast=0.0, defect_crops=0.0)  # fmt: skip


@dataclass(frozen=True)
class Params:
    """One draw of the random augmentation. `rot` counts quarter-turns counter-clockwise (np.rot90).

    `crop` is a window of the source image; it may reach past the edges (padded: image 0 after
    normalisation, mask ignore). `size` is what the window is resized to (None: the config's size)."""

    crop: tuple[int, int, int, int]  # top, left, height, width
    rot: int = 0
    hflip: bool = False
    vflip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    size: tuple[int, int] | None = None
    pad_to: int = 1  # pad the result (bottom/right) to a multiple of this


class Transform:
    """(image HxWx3 uint8, mask HxW int) -> (float32 3xHxW normalised, int64 HxW)."""

    def __init__(self, config: TransformConfig | None = None, train: bool = False):
        self.config = config or TransformConfig()
        self.train = train

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.apply(image, mask, self.sample(image.shape[0], image.shape[1], generator, mask))

    def sample(
        self, height: int, width: int, generator: torch.Generator | None = None, mask: np.ndarray | None = None
    ) -> Params:
        """Random parameters for an image of this size (identity in eval mode). In crop mode the
        mask (if given) places the defect-centred crops."""
        cfg = self.config
        if not self.train:
            if cfg.crops:
                return Params((0, 0, height, width), size=cfg.eval_size(height, width), pad_to=cfg.pad_to)
            return Params((0, 0, height, width))

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        def coin() -> bool:
            return bool(torch.rand((), generator=generator) < 0.5)

        def quarter_turns() -> int:
            return int(torch.randint(0, 4, (), generator=generator)) if cfg.rotate90 else 0

        crop, rot = (0, 0, height, width), None
        if cfg.crops:  # the window's shape depends on the rotation: draw it first
            rot = quarter_turns()
            crop = self._crop_window(height, width, rot, mask, uniform, generator)
        elif cfg.resize_crop is not None:
            area = uniform(*cfg.resize_crop)
            aspect = math.exp(uniform(*(math.log(a) for a in ASPECT_JITTER)))
            ch = min(height, max(1, round(height * math.sqrt(area / aspect))))
            cw = min(width, max(1, round(width * math.sqrt(area * aspect))))
            top = int(torch.randint(0, height - ch + 1, (), generator=generator))
            left = int(torch.randint(0, width - cw + 1, (), generator=generator))
            crop = (top, left, ch, cw)
        return Params(
            crop=crop,
            rot=quarter_turns() if rot is None else rot,  # resize mode: drawn after the crop, as always
            hflip=coin() if cfg.hflip else False,
            vflip=coin() if cfg.vflip else False,
            brightness=uniform(1 - cfg.brightness, 1 + cfg.brightness) if cfg.brightness else 1.0,
            contrast=uniform(1 - cfg.contrast, 1 + cfg.contrast) if cfg.contrast else 1.0,
        )

    def _crop_window(self, height, width, rot, mask, uniform, generator) -> tuple[int, int, int, int]:
        """A source window that becomes a `size` crop after rotation and resampling by scale x zoom."""
        cfg = self.config
        factor = cfg.scale * (uniform(*cfg.zoom) if cfg.zoom else 1.0)
        out_h, out_w = cfg.size if rot % 2 == 0 else cfg.size[::-1]
        ch, cw = max(1, round(out_h / factor)), max(1, round(out_w / factor))
        defects = None
        if mask is not None and cfg.defect_crops and float(torch.rand((), generator=generator)) < cfg.defect_crops:
            defects = np.flatnonzero((mask > 0) & (mask != IGNORE))
        if defects is not None and defects.size:
            y, x = divmod(int(defects[int(torch.randint(0, defects.size, (), generator=generator))]), width)
            cy = y + uniform(-DEFECT_OFFSET, DEFECT_OFFSET) * ch
            cx = x + uniform(-DEFECT_OFFSET, DEFECT_OFFSET) * cw
            return _fit(round(cy - ch / 2), ch, height), _fit(round(cx - cw / 2), cw, width), ch, cw

        def start(extent: int, size: int) -> int:  # uniform over the image, centred jitter if it is smaller
            lo, hi = min(0, extent - size), max(0, extent - size)
            return int(torch.randint(lo, hi + 1, (), generator=generator))

        return start(height, ch), start(width, cw), ch, cw

    def apply(self, image: np.ndarray, mask: np.ndarray, p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[:2] != mask.shape:
            raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
        fill = self._fill()
        image, mask = window(image, p.crop, fill), window(mask, p.crop, IGNORE)
        image, mask = geometric(image, p), geometric(mask, p)
        image, mask = self._resize(image, mask, p.size or tuple(self.config.size))
        if p.pad_to > 1:
            h, w = mask.shape
            grown = (0, 0, -(-h // p.pad_to) * p.pad_to, -(-w // p.pad_to) * p.pad_to)
            image, mask = window(image, grown, fill), window(mask, grown, IGNORE)
        x = image.astype(np.float32) / 255.0
        if p.brightness != 1.0 or p.contrast != 1.0:
            x = x * p.brightness
            grey = x.mean()
            x = np.clip((x - grey) * p.contrast + grey, 0.0, 1.0)
        mean = np.asarray(self.config.mean, np.float32)
        std = np.asarray(self.config.std, np.float32)
        x = (x - mean) / std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), torch.from_numpy(mask.astype(np.int64))

    def _fill(self) -> np.ndarray:
        """The padding colour: the normalisation mean, so padding is ~0 after normalising."""
        return np.rint(np.asarray(self.config.mean) * 255).astype(np.uint8)

    def _resize(self, image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        out_h, out_w = size
        if image.shape[:2] == (out_h, out_w):
            return np.ascontiguousarray(image), np.ascontiguousarray(mask)
        if mask.min() < 0 or mask.max() > 255:
            raise ValueError("mask values must be class ids 0..254 or 255 (ignore)")
        resample = Image.BILINEAR if self.config.interpolation == "bilinear" else Image.NEAREST
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((out_w, out_h), resample))
        small = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
        return image, np.asarray(small.resize((out_w, out_h), Image.NEAREST))


def _fit(start: int, size: int, extent: int) -> int:
    """Shift a window start so the window stays inside [0, extent) where it fits (else centre it)."""
    if size >= extent:
        return (extent - size) // 2
    return min(max(start, 0), extent - size)


def window(array: np.ndarray, crop: tuple[int, int, int, int], fill) -> np.ndarray:
    """array[top:top+h, left:left+w], padded with `fill` where the window leaves the array."""
    top, left, h, w = crop
    height, width = array.shape[:2]
    if top >= 0 and left >= 0 and top + h <= height and left + w <= width:
        return array[top : top + h, left : left + w]
    out = np.empty((h, w, *array.shape[2:]), array.dtype)
    out[...] = fill
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, height), min(left + w, width)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = array[y0:y1, x0:x1]
    return out


def geometric(array: np.ndarray, p: Params) -> np.ndarray:
    """Rotate by p.rot quarter-turns (counter-clockwise), then flip left-right / up-down."""
    array = np.rot90(array, p.rot, axes=(0, 1))
    if p.hflip:
        array = array[:, ::-1]
    if p.vflip:
        array = array[::-1]
    return array
