"""Dataset names on the command line -> a `SegSource` (root resolution, split reuse, skipping bad files)."""

from __future__ import annotations

import os
from pathlib import Path

from autonad.data.base import Problems, SegSource
from autonad.data.folder import open_folder
from autonad.data.ksdd2 import open_ksdd2
from autonad.data.mt import open_mt
from autonad.data.neu import open_neu
from autonad.data.synthetic import SyntheticSource
from autonad.data.voc import MSD_CLASSES, open_voc
from autonad.errors import AutoNADError

DATASETS = {
    "synthetic": "built in: 500 textured 128x128 surfaces with scratches, spots, cracks (bg + 3, ~70% defect-free)",
    "ksdd2": "KolektorSDD2: train/, test/ with NNNNN.png + NNNNN_GT.png (bg + defect, official train/test)",
    "mt": "Magnetic Tile: MT_<Class>/Imgs/*.jpg + .png (bg + 5 classes, MT_Free = defect-free; no official split)",
    "neu-seg": "NEU-Seg steel strip: images/ + annotations/{training,test} (bg + inclusion, patches, scratches)",
    "msd": "Mobile-phone screen defects, VOC layout (bg + oil, scratch, stain; official 6:2:2 split)",
    "voc:<root>": "PASCAL VOC layout: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/{train,val,test}.txt",
    "folder:<root>": "your images/ + masks/ (matching stems); optional classes.txt and train/val/test.txt",
}
OPENERS = {
    "ksdd2": open_ksdd2,
    "mt": open_mt,
    "neu-seg": open_neu,
    "msd": lambda root, seed, problems: open_voc(root, seed, problems, name="msd", default_classes=MSD_CLASSES),
    "voc": open_voc,
    "folder": open_folder,
}
# Folder names tried under $AUTONAD_DATA and ./data for each named dataset.
ROOT_NAMES = {
    "ksdd2": ("ksdd2", "KolektorSDD2"),
    "mt": ("mt", "magnetic_tile", "Magnetic-tile-defect-datasets"),
    "neu-seg": ("neu-seg", "neu_seg", "NEU_Seg"),
    "msd": ("msd", "MSD"),
}
ROOTED = ("voc", "folder")  # roots come in the name: voc:<root>, folder:<root>


def dataset_names() -> str:
    return ", ".join(DATASETS)


def open_dataset(
    name: str = "synthetic",
    data_root: str | os.PathLike | None = None,
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    skip_bad: bool = False,
) -> SegSource:
    """Open a dataset by command-line name (see `DATASETS`).

    `data_root` is the dataset's own folder (default `$AUTONAD_DATA/<name>`, else `./data/<name>`).
    `seed` drives the carved split (and the synthetic images). `split_file` reuses a recorded
    split.json exactly. With `skip_bad`, every file is read once now and bad ones are dropped and
    listed in `source.bad`; otherwise the first bad file raises `AutoNADError`.
    """
    kind, _, rest = name.partition(":")
    problems = Problems(skip_bad)
    if kind == "synthetic" and not rest:
        source: SegSource = SyntheticSource(seed=seed, problems=problems)
    elif kind in OPENERS and (kind in ROOTED or not rest):
        root = _resolve_root(kind, rest, data_root)
        source = OPENERS[kind](root, seed, problems)
    else:
        raise AutoNADError(f"unknown dataset '{name}' (known: {dataset_names()})")
    if not source.samples:
        raise AutoNADError(f"{source.root}: no usable samples ({len(source.bad)} bad files skipped)")
    if skip_bad:
        source.verify(skip_bad=True)
    if split_file is not None:
        source.use_split(split_file)
    return source


def _resolve_root(kind: str, in_name: str, data_root: str | os.PathLike | None) -> Path:
    if kind in ROOTED:
        if in_name and data_root is not None:
            raise AutoNADError(f"{kind}:{in_name}: give the root either in the name or with --data-root, not both")
        if not (in_name or data_root):
            raise AutoNADError(f"dataset '{kind}' needs a root folder: {kind}:<root>")
        candidates = [Path(in_name or data_root).expanduser()]
    elif data_root is not None:
        candidates = [Path(data_root).expanduser()]
    else:
        parent = os.environ.get("AUTONAD_DATA")
        bases = [Path(parent).expanduser()] if parent else [Path("data")]
        candidates = [base / folder for base in bases for folder in ROOT_NAMES[kind]]
    for root in candidates:
        if root.is_dir():
            return root.resolve()
    tried = ", ".join(str(c) for c in candidates)
    hint = "" if kind in ROOTED else "; use --data-root DIR or set AUTONAD_DATA to the folder holding it"
    raise AutoNADError(f"{candidates[0]}: dataset root not found for '{kind}' (tried {tried}){hint}")


def absolute_reference(dataset: str, source: SegSource) -> tuple[str, str | None]:
    """(dataset, data_root) that name `source` by absolute paths, for workers that run in other folders or
    on other nodes (Ray actors, Ray Train workers, tuning trials): a folder:/voc: root resolved, a named
    dataset's root (--data-root, $AUTONAD_DATA or ./data) resolved where it has one."""
    kind, sep, root = dataset.partition(":")
    if sep:
        return f"{kind}:{Path(root).expanduser().resolve()}", None
    return dataset, str(source.root.resolve()) if source.root else None
