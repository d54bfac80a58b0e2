"""A user's folder (`folder:ROOT`): `images/` and `masks/` with matching stems, any image extension.

Masks hold class indices; a mask of only 0/255 in a two-class dataset means background/defect.
Optional `classes.txt` (background first) names the classes, otherwise they are numbered from the
mask values. Optional `train.txt`/`val.txt`/`test.txt` list stems; when `train.txt` exists every
image must be listed somewhere, and splits that are not listed are carved from train.
"""

from __future__ import annotations

from pathlib import Path

from autonad.data.base import IGNORE, Problems, Sample, SegSource
from autonad.data.listing import index_by_stem, pair_files, read_classes, read_official, require_dir, scan_mask_values
from autonad.data.split import SPLITS
from autonad.errors import AutoNADError

LAYOUT = "folder layout: images/ and masks/ with matching stems"
MAX_GUESSED_CLASS = 64  # without classes.txt, larger mask values are taken for greyscale masks, not class ids


def open_folder(root: Path, seed: int, problems: Problems) -> SegSource:
    img_dir = require_dir(root / "images", LAYOUT)
    mask_dir = require_dir(root / "masks", LAYOUT)
    images = index_by_stem(img_dir, problems)
    masks = index_by_stem(mask_dir, problems)
    if not images:
        raise AutoNADError(f"{img_dir}: no images ({LAYOUT})")
    pairs = pair_files(images, masks, problems, lambda s: str(mask_dir / f"{s}.png"))
    official = read_official({s: root / f"{s}.txt" for s in SPLITS})
    pairs, official = _apply_lists(pairs, official, images, root, problems)
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        classes = read_classes(classes_file)
    else:
        classes, pairs = _classes_from_masks(pairs, mask_dir, problems)
    samples = [Sample(sample_id, image, mask) for sample_id, image, mask in pairs]
    return SegSource(
        "folder", root, classes, samples, official=official, seed=seed, binary255=len(classes) == 2, problems=problems
    )


def _apply_lists(pairs: list, official: dict, images: dict, root: Path, problems: Problems) -> tuple[list, dict]:
    ids = {p[0] for p in pairs}
    for split, listed in official.items():
        for sample_id in listed:
            if sample_id not in images:
                problems.report(
                    f"{root / f'{split}.txt'}: lists '{sample_id}' but images/ has no such image", sample_id
                )
    official = {s: [i for i in listed if i in ids] for s, listed in official.items()}
    if "train" in official:
        listed = {i for part in official.values() for i in part}
        for sample_id, image, _ in pairs:
            if sample_id not in listed:
                problems.report(f"{image}: not listed in any of train.txt, val.txt, test.txt", sample_id)
        pairs = [p for p in pairs if p[0] in listed]
    return pairs, official


def _classes_from_masks(pairs: list, mask_dir: Path, problems: Problems) -> tuple[list[str], list]:
    values, pairs = scan_mask_values(pairs, problems)
    if values and values <= {0, IGNORE} and IGNORE in values:
        return ["background", "defect"], pairs
    ids = values - {IGNORE}
    if not ids or max(ids) == 0:
        raise AutoNADError(f"{mask_dir}: every mask is empty (background only); add classes.txt to name the classes")
    if max(ids) > MAX_GUESSED_CLASS:
        raise AutoNADError(
            f"{mask_dir}: mask values go up to {max(ids)}, which does not look like class ids (greyscale or "
            "anti-aliased masks?); use class indices, 0/255 for binary masks, or add classes.txt"
        )
    return ["background", *(f"class_{i}" for i in range(1, max(ids) + 1))], pairs


def write_folder(source: SegSource, root: Path) -> Path:
    """Write any dataset in the folder layout (`images/`, `masks/` as PNG, `classes.txt`), e.g. the
    synthetic data for a quick `folder:` run or a test."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for sample_id in source.ids:
        image, mask = source.load(sample_id)
        Image.fromarray(image).save(root / "images" / f"{sample_id}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{sample_id}.png")
    (root / "classes.txt").write_text("\n".join(source.classes) + "\n")
    return root
