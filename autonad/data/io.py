"""The one place that reads image and mask files (Pillow), turning every failure into a one-line error.

How each kind of image file becomes the HxWx3 uint8 RGB the networks see:
- 8-bit RGB as it is; greyscale replicated to three channels; palette images through their palette;
- an alpha channel (RGBA, LA, PA) is dropped, not blended;
- 16-bit and 32-bit greyscale (industrial cameras) is scaled to 0..255 by the image's own range
  (min -> 0, max -> 255; a constant image becomes 0), so a 12-bit sensor in a 16-bit file is not
  saturated or left nearly black;
- the EXIF orientation tag of JPEG, TIFF and WebP files is applied (as image viewers and annotation
  tools show the file), to images and masks alike;
- images above MAX_IMAGE_PIXELS are refused (a decompression bomb, or no training image).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from autonad.errors import AutoNADError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Real datasets contain large but honest images (MSD is 1920x1080); only guard against absurd ones.
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTS and not path.name.startswith(".")


HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
SWAPPED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees
EXIF_FORMATS = ("JPEG", "MPO", "TIFF", "WEBP")


def _open(path: Path, what: str) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise AutoNADError(f"{path}: {what} file not found") from None
    except Image.DecompressionBombError:
        raise AutoNADError(f"{path}: {what} larger than {Image.MAX_IMAGE_PIXELS:,} pixels, refused") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise AutoNADError(f"{path}: unreadable or corrupt {what} (not a readable image file)") from None


def _decode(im: Image.Image, path: Path, what: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Image.DecompressionBombError:
        raise AutoNADError(f"{path}: {what} larger than {Image.MAX_IMAGE_PIXELS:,} pixels, refused") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = " ".join(str(e).split()) or e.__class__.__name__
        raise AutoNADError(f"{path}: unreadable or corrupt {what} ({reason})") from None


def read_image(path: Path) -> np.ndarray:
    """An image as HxWx3 uint8 RGB, by the rules in the module docstring."""
    with _open(path, "image") as im:
        _decode(im, path, "image")
        return to_rgb8(_upright(im))


def to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in HIGH_DEPTH_MODES:
        values = np.asarray(im).astype(np.float64)
        lo, hi = float(values.min()), float(values.max())
        grey = np.round((values - lo) * (255.0 / (hi - lo))) if hi > lo else np.zeros_like(values)
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) as read_image returns it, from the file header only (no decoding)."""
    with _open(path, "image") as im:
        return _oriented_size(im)


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    turned = _has_orientation(im) and im.getexif().get(0x0112) in SWAPPED_ORIENTATIONS
    return (im.width, im.height) if turned else (im.height, im.width)


def _has_orientation(im: Image.Image) -> bool:
    """Formats whose EXIF sits in the header (camera files); a PNG's would need the whole image decoded."""
    return im.format in EXIF_FORMATS


def _upright(im: Image.Image) -> Image.Image:
    return ImageOps.exif_transpose(im) if _has_orientation(im) else im


def check_image(path: Path) -> tuple[int, int]:
    """Decode the whole file once (JPEGs at 1/8 scale, which still reads every byte); returns (height, width)."""
    with _open(path, "image") as im:
        size = _oriented_size(im)
        if im.format == "JPEG":
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        _decode(im, path, "image")
        return size


def read_mask_raw(path: Path) -> tuple[np.ndarray, str]:
    """Mask pixels as stored (palette images give their indices) and the PIL mode."""
    with _open(path, "mask") as im:
        _decode(im, path, "mask")
        im = _upright(im)
        if im.mode == "1":
            return np.asarray(im, dtype=np.uint8) * 255, im.mode
        if im.mode in ("LA", "PA", "RGBA"):
            return np.asarray(im)[..., :-1], im.mode
        return np.asarray(im), im.mode


def write_image(path: Path, image: np.ndarray | Image.Image) -> Path:
    """Write a PNG atomically (a kill never leaves half a file under its name)."""
    from autonad.config import write_atomic

    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    write_atomic(path, lambda f: picture.save(f, format="PNG"))
    return path
