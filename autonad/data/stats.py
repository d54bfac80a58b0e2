"""Dataset statistics: normalisation mean/std over the train split, and the summary `inspect` prints."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from autonad.data.base import SampleInfo, SegSource, track
from autonad.data.split import SPLITS


def compute_norm_stats(
    source: SegSource, ids: Sequence[str] | None = None, max_images: int = 256, seed: int = 0
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel (mean, std) in [0, 1] units over `ids` (default: the train split), pixel-weighted,
    from at most `max_images` images drawn deterministically."""
    ids = sorted(source.splits["train"] if ids is None else ids)
    if len(ids) > max_images:
        ids = sorted(random.Random(f"autonad-norm/{seed}").sample(ids, max_images))
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for sample_id in track(ids, "normalisation statistics"):
        pixels = source.load_image(sample_id).reshape(-1, 3).astype(np.float64) / 255.0
        total += pixels.sum(axis=0)
        squares += np.square(pixels).sum(axis=0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 1e-12))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def summarize(source: SegSource, infos: Sequence[SampleInfo]) -> dict:
    """Counts per split and class, positives/negatives, size range and pixel shares (JSON-ready)."""
    by_id = {info.id: info for info in infos}
    classes = source.classes
    pixels = np.sum([info.pixels for info in infos], axis=0) if infos else np.zeros(len(classes) + 1)
    heights = [info.height for info in infos] or [0]
    widths = [info.width for info in infos] or [0]
    splits = source.splits
    return {
        "dataset": source.name,
        "root": str(source.root) if source.root is not None else None,
        "classes": classes,
        "num_classes": source.num_classes,
        **_counts([by_id[i] for i in source.ids if i in by_id], classes),
        "height": [min(heights), max(heights)],
        "width": [min(widths), max(widths)],
        "pixel_share": {c: float(pixels[k] / max(pixels.sum(), 1)) for k, c in enumerate(classes)},
        "ignore_share": float(pixels[-1] / max(pixels.sum(), 1)),
        "split": {
            "origin": source.split_origin,
            "seed": source.seed,
            "official": {s: len(ids) for s, ids in source.official.items()},
            "used": {s: len(splits[s]) for s in SPLITS},
        },
        "per_split": {s: _counts([by_id[i] for i in splits[s] if i in by_id], classes) for s in SPLITS},
        "bad": list(source.bad),
    }


def _counts(infos: Sequence[SampleInfo], classes: Sequence[str]) -> dict:
    """Images, positives (any defect pixel), negatives, and images containing each class."""
    has = np.array([info.pixels[: len(classes)] for info in infos]).reshape(-1, len(classes)) > 0
    positives = int(has[:, 1:].any(axis=1).sum())
    return {
        "images": len(infos),
        "positives": positives,
        "negatives": len(infos) - positives,
        "images_per_class": {c: int(has[:, k].sum()) for k, c in enumerate(classes)},
    }
