"""PASCAL VOC layout (`voc:ROOT`, and `msd`): JPEGImages/, SegmentationClass/, ImageSets/Segmentation/.

Masks are class-index PNGs, usually palette-mode: the palette *indices* are the class ids and 255
is void (kept as ignore). When split lists exist they define the dataset (as in VOC, where
JPEGImages also holds images without segmentation); otherwise every image must have a mask.
Class names come from `classes.txt` (background first) or are numbered from the mask values.
"""

from __future__ import annotations

from pathlib import Path

from autonad.data.base import IGNORE, Problems, Sample, SegSource
from autonad.data.listing import (
    index_by_stem,
    pair_files,
    read_classes,
    read_official,
    require_dir,
    scan_mask_values,
)
from autonad.data.split import SPLITS
from autonad.errors import AutoNADError

MSD_CLASSES = ["background", "oil", "scratch", "stain"]
LAYOUT = "VOC layout: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/{train,val,test}.txt"


def open_voc(
    root: Path, seed: int, problems: Problems, name: str = "voc", default_classes: list[str] | None = None
) -> SegSource:
    jpeg = require_dir(root / "JPEGImages", LAYOUT)
    seg = require_dir(root / "SegmentationClass", LAYOUT)
    images = index_by_stem(jpeg, problems)
    masks = index_by_stem(seg, problems, (".png",))
    sets = root / "ImageSets" / "Segmentation"
    official = read_official({s: sets / f"{s}.txt" for s in SPLITS})
    if official:
        pairs = _listed_pairs(official, images, masks, sets, seg, problems)
        kept = {p[0] for p in pairs}
        official = {s: [i for i in ids if i in kept] for s, ids in official.items()}
    else:
        pairs = pair_files(images, masks, problems, lambda s: str(seg / f"{s}.png"))
    if not pairs and not problems.items:
        raise AutoNADError(f"{jpeg}: no images ({LAYOUT})")
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        classes = read_classes(classes_file)
    elif default_classes is not None:
        classes = list(default_classes)
    else:
        classes, pairs = _classes_from_masks(pairs, seg, problems)
    samples = [Sample(sample_id, image, mask) for sample_id, image, mask in pairs]
    return SegSource(name, root, classes, samples, official=official, seed=seed, problems=problems)


def _listed_pairs(official, images, masks, sets: Path, seg: Path, problems: Problems) -> list:
    pairs = []
    for split, ids in official.items():
        for sample_id in ids:
            if sample_id not in images:
                problems.report(
                    f"{sets / f'{split}.txt'}: lists '{sample_id}' but JPEGImages/ has no such image", sample_id
                )
            elif sample_id not in masks:
                problems.report(
                    f"{images[sample_id]}: image has no mask (expected {seg / f'{sample_id}.png'})", sample_id
                )
            else:
                pairs.append((sample_id, images[sample_id], masks[sample_id]))
    return pairs


def _classes_from_masks(pairs: list, seg: Path, problems: Problems) -> tuple[list[str], list]:
    values, pairs = scan_mask_values(pairs, problems)
    ids = values - {IGNORE}
    if not ids or max(ids) == 0:
        raise AutoNADError(f"{seg}: masks hold no class ids besides background/void; add classes.txt to the root")
    return ["background", *(f"class_{i}" for i in range(1, max(ids) + 1))], pairs
