"""The one place that reads image and mask files (Pillow), turning every failure into a one-line error."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from autonad.errors import AutoNADError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Real datasets contain large but honest images (MSD is 1920x1080); only guard against absurd ones.
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTS and not path.name.startswith(".")


def _open(path: Path, what: str) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise AutoNADError(f"{path}: {what} file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise AutoNADError(f"{path}: unreadable or corrupt {what} (not a readable image file)") from None


def _decode(im: Image.Image, path: Path, what: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = " ".join(str(e).split()) or e.__class__.__name__
        raise AutoNADError(f"{path}: unreadable or corrupt {what} ({reason})") from None


def read_image(path: Path) -> np.ndarray:
    """An image as HxWx3 uint8 RGB (greyscale, palette and alpha images are converted)."""
    with _open(path, "image") as im:
        _decode(im, path, "image")
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header only (no decoding)."""
    with _open(path, "image") as im:
        return im.height, im.width


def check_image(path: Path) -> tuple[int, int]:
    """Decode the whole file once (JPEGs at 1/8 scale, which still reads every byte); returns (height, width)."""
    with _open(path, "image") as im:
        size = (im.height, im.width)
        if im.format == "JPEG":
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        _decode(im, path, "image")
        return size


def read_mask_raw(path: Path) -> tuple[np.ndarray, str]:
    """Mask pixels as stored (palette images give their indices) and the PIL mode."""
    with _open(path, "mask") as im:
        _decode(im, path, "mask")
        if im.mode == "1":
            return np.asarray(im, dtype=np.uint8) * 255, im.mode
        if im.mode in ("LA", "PA", "RGBA"):
            return np.asarray(im)[..., :-1], im.mode
        return np.asarray(im), im.mode
