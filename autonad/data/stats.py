"""Dataset statistics: normalisation mean/std over the train split, and the summary `inspect` prints."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from autonad.data.base import IGNORE, SampleInfo, SegSource, track
from autonad.data.split import SPLITS
from autonad.data.transforms import TransformConfig


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


def defect_scale(source: SegSource, transform: TransformConfig, max_images: int = 64, seed: int = 0) -> dict:
    """How thin the defects are and what resizing does to them (what `inspect` reports per recipe).

    Width: 2d - 1 at the ridge pixels of the defects (local maxima of d, the Euclidean distance to
    the nearest non-defect pixel: a 1-px line is 1 wide, a 3-px one 3), medians per image,
    summarised over up to `max_images` defective train images, at native scale. Lost: per image, the
    share of its defect pixels that a round trip to the recipe's network input (a squash to `size`,
    or resampling by `scale`) and back with nearest-neighbour masks no longer marks as defect,
    averaged over images (an image with one thin scratch counts as much as one with a large patch).
    """
    ids = [i for i in sorted(source.splits["train"]) if source.present(i)]
    if len(ids) > max_images:
        ids = sorted(random.Random(f"autonad-scale/{seed}").sample(ids, max_images))
    widths, lost = [], []
    for sample_id in track(ids, "defect widths"):
        mask = source.load_mask(sample_id)
        defect = (mask > 0) & (mask != IGNORE)
        widths.append(_median_width(defect))
        lost.append(float((defect & ~_round_trip(defect, transform)).sum() / defect.sum()))
    factor = transform.scale if transform.crops else None
    if not widths:
        return {"images": 0}
    native = np.percentile(widths, [10, 50, 90])
    return {
        "images": len(widths),
        "defect_width_px": [round(float(v), 1) for v in native],  # p10, median, p90 of per-image medians
        "mode": "crops" if transform.crops else "resize",
        "network_input": f"crops of {transform.size[0]}x{transform.size[1]} at scale {factor:g}"
        if transform.crops
        else f"whole images resized to {transform.size[0]}x{transform.size[1]}",  # fmt: skip
        "lost_share": round(float(np.mean(lost)), 4),
    }


def _median_width(defect: np.ndarray) -> float:
    distance = ndimage.distance_transform_edt(np.pad(defect, 1))[1:-1, 1:-1]
    ridge = defect & (distance >= ndimage.maximum_filter(distance, size=3))
    return float(np.median(2 * distance[ridge] - 1))


def _round_trip(defect: np.ndarray, transform: TransformConfig) -> np.ndarray:
    """A binary mask resampled as the recipe feeds the network (nearest) and back to its own size."""
    h, w = defect.shape
    out_h, out_w = transform.eval_size(h, w) if transform.crops else transform.size
    if (out_h, out_w) == (h, w):
        return defect
    small = Image.fromarray(defect.astype(np.uint8) * 255).resize((out_w, out_h), Image.NEAREST)
    return np.asarray(small.resize((w, h), Image.NEAREST)) > 0
