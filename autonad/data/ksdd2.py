"""KolektorSDD2: `train/` and `test/` with `NNNNN.png` images and `NNNNN_GT.png` masks (official split)."""

from __future__ import annotations

from pathlib import Path

from autonad.data.base import Problems, Sample, SegSource
from autonad.data.listing import index_by_stem, pair_files, require_dir
from autonad.errors import AutoNADError

CLASSES = ["background", "defect"]
LAYOUT = "KSDD2 layout: train/ and test/ holding NNNNN.png with NNNNN_GT.png masks"


def open_ksdd2(root: Path, seed: int, problems: Problems) -> SegSource:
    samples, official = [], {}
    for split in ("train", "test"):
        folder = require_dir(root / split, LAYOUT)
        images = index_by_stem(folder, problems, (".png",), lambda s: None if s.endswith("_GT") else s)
        masks = index_by_stem(folder, problems, (".png",), lambda s: s[:-3] if s.endswith("_GT") else None)
        if not images and not masks:
            raise AutoNADError(f"{folder}: no images (split '{split}' is empty)")
        pairs = pair_files(images, masks, problems, lambda s, f=folder: str(f / f"{s}_GT.png"), prefix=f"{split}/")
        # Masks are 3-channel with 255 on defects; any channel > 0 counts as defect.
        samples += [Sample(sample_id, image, mask) for sample_id, image, mask in pairs]
        official[split] = [sample_id for sample_id, _, _ in pairs]
    return SegSource("ksdd2", root, CLASSES, samples, official=official, seed=seed, mask_mode="any", problems=problems)
