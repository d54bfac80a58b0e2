"""Data stage: datasets, splits, transforms and statistics.

Public API::

    open_dataset(name="synthetic", data_root=None, seed=0, split_file=None, skip_bad=False) -> SegSource
        name: synthetic | ksdd2 | mt | neu-seg | msd | voc:<root> | folder:<root>  (DATASETS describes them)
        data_root: the dataset's folder; default $AUTONAD_DATA/<name>, else ./data/<name>

    SegSource
        .name, .root, .classes (index 0 = "background"), .num_classes, .seed, .ids, .samples
        .splits -> {"train": ids, "val": ids, "test": ids}; .split_origin says official / carved + seed
        .official -> the official split lists the dataset has (possibly none)
        .load(id) -> (image HxWx3 uint8 RGB, mask HxW int64 class ids, 255 = ignore)
        .image_size(id) -> (H, W) from the header; .present(id) -> defect class ids in the mask
        .verify(skip_bad=None) -> [SampleInfo]  reads every file once; raises, or drops + lists in .bad
        .save_split(path) writes split.json; open_dataset(..., split_file=path) reuses it exactly
    SyntheticSource(n=500, size=128, seed=0)  the built-in generator (a SegSource)

    SegmentationDataset(source, split | ids, transform=None)  torch Dataset of (float32 3xHxW, int64 HxW)
    collate_padded(items) -> (images, masks)  batches whole images of different sizes (padding ignored)
    TransformConfig(size=(H, W), hflip, vflip, rotate90, resize_crop, brightness, contrast, mean, std)
    Transform(config, train=False)(image, mask, generator=None) -> (tensor, tensor)
    compute_norm_stats(source, ids=None, max_images=256) -> (mean, std)   per channel, [0, 1] units
    summarize(source, source.verify()) -> dict   what `autonad datasets inspect` prints
    stratified_split(ids, keys, fractions, seed), read_split(path)

Every user-facing problem (missing root, image without mask, corrupt file, size mismatch, mask
value outside the classes, unknown name, empty split) raises `AutoNADError` naming the file.
"""

from autonad.data.base import IGNORE, Sample, SampleInfo, SegSource, check_same_data
from autonad.data.dataset import SegmentationDataset, collate_padded, eval_loader
from autonad.data.registry import DATASETS, absolute_reference, open_dataset
from autonad.data.split import SPLITS, read_split, stratified_split
from autonad.data.stats import compute_norm_stats, summarize
from autonad.data.synthetic import SyntheticSource
from autonad.data.transforms import Params, Transform, TransformConfig

__all__ = [
    "check_same_data",
    "DATASETS",
    "IGNORE",
    "SPLITS",
    "Params",
    "Sample",
    "SampleInfo",
    "SegSource",
    "SegmentationDataset",
    "SyntheticSource",
    "Transform",
    "TransformConfig",
    "collate_padded",
    "compute_norm_stats",
    "eval_loader",
    "open_dataset",
    "absolute_reference",
    "read_split",
    "stratified_split",
    "summarize",
]
