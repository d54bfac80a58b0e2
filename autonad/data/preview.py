"""Preview grid: images with coloured mask overlays, defective samples first, and a class legend."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from autonad.data.base import IGNORE, SegSource
from autonad.data.io import write_image

PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
]  # fmt: skip
IGNORE_COLOUR = (255, 255, 255)
TILE = 192
CAPTION = 16
ALPHA = 0.55


def class_colour(class_id: int) -> tuple[int, int, int]:
    return IGNORE_COLOUR if class_id == IGNORE else PALETTE[(class_id - 1) % len(PALETTE)]


def pick_samples(source: SegSource, split: str, n: int, seed: int = 0) -> list[str]:
    """Up to n ids of a split, shuffled with `seed`: about 3/4 defective (first), then defect-free."""
    ids = list(source.splits[split])
    random.Random(f"autonad-preview/{seed}").shuffle(ids)
    want = n - n // 4
    defective, clean = [], []
    for sample_id in ids:
        if len(defective) >= want and len(clean) >= n - want:
            break
        (defective if source.present(sample_id) else clean).append(sample_id)
    chosen = defective[:want] + clean[: n - min(want, len(defective))]
    return (chosen + defective[want:])[:n]


def overlay(image: np.ndarray, mask: np.ndarray, grow: int = 0) -> np.ndarray:
    """Blend class colours into the image; `grow` widens defects so they survive downscaling."""
    if grow:
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * grow + 1)))
    out = image.astype(np.float32)
    for class_id in np.unique(mask):
        if class_id == 0:
            continue
        sel = mask == class_id
        out[sel] = (1 - ALPHA) * out[sel] + ALPHA * np.asarray(class_colour(int(class_id)), np.float32)
    return out.astype(np.uint8)


def render_preview(source: SegSource, ids: list[str], out: str | Path, title: str = "") -> Path:
    """Write a PNG grid of `ids` with overlays and a legend; returns the path."""
    font = ImageFont.load_default(size=12)
    cols = max(1, min(len(ids), math.ceil(math.sqrt(len(ids)))))
    rows = max(1, math.ceil(len(ids) / cols))
    head, legend_h = 24, 28
    canvas = Image.new("RGB", (cols * TILE, head + rows * (TILE + CAPTION) + legend_h), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 5), title, fill=(235, 235, 235), font=font)
    has_ignore = False
    for k, sample_id in enumerate(ids):
        image, mask = source.load(sample_id)
        has_ignore |= bool((mask == IGNORE).any())
        factor = (TILE - 4) / max(image.shape[:2])
        tile = Image.fromarray(overlay(image, mask, grow=int(1 / factor / 2)))
        size = (max(1, round(tile.width * factor)), max(1, round(tile.height * factor)))
        tile = tile.resize(size, Image.BILINEAR if factor < 1 else Image.NEAREST)
        x0, y0 = (k % cols) * TILE, head + (k // cols) * (TILE + CAPTION)
        canvas.paste(tile, (x0 + (TILE - tile.width) // 2, y0 + (TILE - tile.height) // 2))
        names = ",".join(source.classes[c] for c in sorted(source.present(sample_id))) or "defect-free"
        draw.text((x0 + 3, y0 + TILE), _fit(f"{names}  {sample_id}", font, TILE - 6), fill=(200, 200, 200), font=font)
    _legend(draw, source.classes, has_ignore, head + rows * (TILE + CAPTION) + 6, font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_image(out, canvas)


def _legend(draw: ImageDraw.ImageDraw, classes: list[str], ignore: bool, y: int, font) -> None:
    x = 6
    for class_id, name in [*enumerate(classes), *([(IGNORE, "ignore")] if ignore else [])][1:]:
        draw.rectangle((x, y + 2, x + 12, y + 14), fill=class_colour(class_id))
        draw.text((x + 17, y + 1), name, fill=(235, 235, 235), font=font)
        x += 30 + int(draw.textlength(name, font=font))


def _fit(text: str, font, width: int) -> str:
    while text and font.getlength(text) > width:
        text = text[:-1]
    return text
