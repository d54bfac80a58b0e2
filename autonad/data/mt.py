"""Magnetic Tile: `MT_<Class>/Imgs/<stem>.jpg` + `<stem>.png`; the class comes from the folder.

Masks are binary with anti-aliased edges (binarised at >= 128); `MT_Free` holds the defect-free
images. There is no official split, so one is carved, stratified by class folder.
"""

from __future__ import annotations

from pathlib import Path

from autonad.data.base import Problems, Sample, SegSource
from autonad.data.listing import index_by_stem, pair_files, require_dir
from autonad.data.split import DEFECT_FREE
from autonad.errors import AutoNADError

DEFECTS = ("Blowhole", "Break", "Crack", "Fray", "Uneven")
FREE = "Free"
CLASSES = ["background", *DEFECTS]
LAYOUT = "Magnetic Tile layout: MT_<Class>/Imgs/<stem>.jpg + <stem>.png"


def open_mt(root: Path, seed: int, problems: Problems) -> SegSource:
    folders = sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("MT_"))
    if not folders:
        raise AutoNADError(f"{root}: no MT_<Class> folders ({LAYOUT})")
    samples = []
    for folder in folders:
        name = folder.name[3:]
        if name != FREE and name not in DEFECTS:
            known = ", ".join(f"MT_{c}" for c in (*DEFECTS, FREE))
            raise AutoNADError(f"{folder}: unknown Magnetic Tile class folder (known: {known})")
        imgs = require_dir(folder / "Imgs", LAYOUT)
        images = index_by_stem(imgs, problems, (".jpg", ".jpeg"))
        masks = index_by_stem(imgs, problems, (".png",))
        pairs = pair_files(images, masks, problems, lambda s, d=imgs: str(d / f"{s}.png"), prefix=f"{folder.name}/")
        label, group = (0, DEFECT_FREE) if name == FREE else (CLASSES.index(name), name)
        samples += [Sample(sample_id, image, mask, label, group) for sample_id, image, mask in pairs]
    return SegSource("mt", root, CLASSES, samples, seed=seed, mask_mode="threshold", problems=problems)
