"""NEU-Seg: `images/{training,test}/*.jpg` with class-index masks `annotations/{training,test}/*.png`.

Stems repeat across the two folders, so sample ids carry the folder (`training/000201`).
"""

from __future__ import annotations

from pathlib import Path

from autonad.data.base import Problems, Sample, SegSource
from autonad.data.listing import index_by_stem, pair_files, require_dir
from autonad.errors import AutoNADError

CLASSES = ["background", "inclusion", "patches", "scratches"]
FOLDERS = {"train": "training", "test": "test"}
LAYOUT = "NEU-Seg layout: images/{training,test}/*.jpg and annotations/{training,test}/*.png"


def open_neu(root: Path, seed: int, problems: Problems) -> SegSource:
    samples, official = [], {}
    for split, sub in FOLDERS.items():
        img_dir = require_dir(root / "images" / sub, LAYOUT)
        ann_dir = require_dir(root / "annotations" / sub, LAYOUT)
        images = index_by_stem(img_dir, problems)
        masks = index_by_stem(ann_dir, problems, (".png",))
        if not images and not masks:
            raise AutoNADError(f"{img_dir}: no images (split '{split}' is empty)")
        pairs = pair_files(images, masks, problems, lambda s, d=ann_dir: str(d / f"{s}.png"), prefix=f"{sub}/")
        samples += [Sample(sample_id, image, mask) for sample_id, image, mask in pairs]
        official[split] = [sample_id for sample_id, _, _ in pairs]
    return SegSource("neu-seg", root, CLASSES, samples, official=official, seed=seed, problems=problems)
