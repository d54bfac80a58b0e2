"""`SegSource`: one interface over every dataset format (samples, classes, splits, loading, checks)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from autonad.data import io
from autonad.data.split import DEFECT_FREE, SPLITS, check_splits, plan_splits, read_split, split_record, write_split
from autonad.errors import AutoNADError
from autonad.ui import console, progress

IGNORE = 255  # mask value excluded from loss and metrics (VOC "void")
MaskMode = Literal["index", "any", "threshold"]
T = TypeVar("T")


def track(items: Sequence[T], description: str) -> Iterator[T]:
    """Iterate under the shared progress bar (transient; off when stdout is not a terminal)."""
    with progress(transient=True, disable=not console.is_terminal) as bar:
        yield from bar.track(items, description=description)


@dataclass(frozen=True)
class Sample:
    """One image/mask pair. `label` is the class a binary mask's foreground gets ("any"/"threshold" masks);
    `group` is a stratification key known without reading the mask (e.g. the MT class folder)."""

    id: str
    image: Path
    mask: Path
    label: int = 1
    group: str | None = None


@dataclass(frozen=True)
class SampleInfo:
    """What `verify` learns about a sample: its size and pixel count per class (last entry: ignore)."""

    id: str
    height: int
    width: int
    pixels: tuple[int, ...]


class Problems:
    """Bad input: raised at once, or (skip_bad) collected so the user sees every skipped file."""

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.items: list[str] = []
        self.ids: set[str] = set()  # sample ids skipped, where known

    def report(self, message: str, sample_id: str | None = None) -> None:
        if not self.skip:
            raise AutoNADError(message)
        self.items.append(message)
        if sample_id is not None:
            self.ids.add(sample_id)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # generated samples (synthetic) have no files
        return -1


def check_same_data(then: dict[str, Any] | None, now: dict[str, Any], where: str) -> None:
    """Refuse, saying what differs, a run recorded on other data than `now` (None: recorded before
    runs kept a fingerprint, nothing to compare)."""
    if then is None:
        return
    if then.get("root") != now["root"]:
        raise AutoNADError(f"{where}: was trained on {then.get('root') or then.get('name')}, not on "
                           f"{now['root'] or now['name']}; choose another --out for a new run")  # fmt: skip
    added, removed = sorted(set(now["ids"]) - set(then["ids"])), sorted(set(then["ids"]) - set(now["ids"]))
    if added or removed:
        parts = [f"{len(added)} images added (first: {added[0]})" if added else "",
                 f"{len(removed)} removed (first: {removed[0]})" if removed else ""]  # fmt: skip
        raise AutoNADError(f"{where}: the dataset has changed since it was trained: "
                           f"{', '.join(p for p in parts if p)}; choose another --out for a new run")  # fmt: skip
    if then.get("content") != now["content"]:
        raise AutoNADError(f"{where}: the dataset's files have changed since it was trained (same names, other "
                           "sizes or contents); choose another --out for a new run")  # fmt: skip


def classes_in(mask: np.ndarray) -> frozenset[int]:
    """Defect class ids (not background, not ignore) present in a decoded mask."""
    return frozenset(np.flatnonzero(np.bincount(mask.ravel(), minlength=1)).tolist()) - {0, IGNORE}


class SegSource:
    """A segmentation dataset: class names (index 0 is background), samples and their splits.

    Masks decode to int64 class ids with 255 = ignore, by `mask_mode`:
    "index" (pixel value = class id; with `binary255`, a mask holding only 0/255 means background/defect),
    "any" (any channel > 0 -> sample.label) or "threshold" (>= 128 -> sample.label).
    Splits are planned on first access (official, or carved by `plan_splits`) unless set from a split file.
    """

    def __init__(
        self,
        name: str,
        root: Path | None,
        classes: Sequence[str],
        samples: Iterable[Sample],
        *,
        official: dict[str, list[str]] | None = None,
        seed: int = 0,
        mask_mode: MaskMode = "index",
        binary255: bool = False,
        problems: Problems | None = None,
    ):
        self.name = name
        self.root = root
        self.classes = list(classes)
        if not 2 <= len(self.classes) < IGNORE:
            raise AutoNADError(f"{root or name}: need 2..254 classes (background + defects), got {len(self.classes)}")
        self.samples = {s.id: s for s in samples}
        self.official = {k: v for k, v in (official or {}).items()}
        self.seed = seed
        self.mask_mode = mask_mode
        self.binary255 = binary255
        self.problems = problems or Problems()
        self.split_origin = ""
        self._splits: dict[str, list[str]] | None = None
        self._present: dict[str, frozenset[int]] = {}
        self._infos: dict[str, SampleInfo] = {}

    def __repr__(self) -> str:
        return f"SegSource({self.name!r}, {len(self.samples)} samples, {self.num_classes} classes, root={self.root})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def ids(self) -> list[str]:
        return list(self.samples)

    @property
    def bad(self) -> list[str]:
        """Messages for the files skipped with skip_bad (empty otherwise)."""
        return self.problems.items

    # ---------------------------------------------------------------- loading

    def load(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(image HxWx3 uint8 RGB, mask HxW int64 class ids with 255 = ignore)."""
        image = self.load_image(sample_id)
        mask = self.load_mask(sample_id)
        self._check_size(sample_id, image.shape[:2], mask.shape)
        return image, mask

    def load_image(self, sample_id: str) -> np.ndarray:
        return io.read_image(self.sample(sample_id).image)

    def load_mask(self, sample_id: str) -> np.ndarray:
        sample = self.sample(sample_id)
        raw, mode = io.read_mask_raw(sample.mask)
        mask = self._decode(raw, mode, sample)
        self._present[sample_id] = classes_in(mask)
        return mask

    def image_size(self, sample_id: str) -> tuple[int, int]:
        """(height, width) read from the image header."""
        return io.image_size(self.sample(sample_id).image)

    def sample(self, sample_id: str) -> Sample:
        try:
            return self.samples[sample_id]
        except KeyError:
            raise AutoNADError(f"{self.name}: no sample '{sample_id}'") from None

    def present(self, sample_id: str) -> frozenset[int]:
        """Defect classes (ids > 0) present in a sample's mask; read once and cached."""
        if sample_id not in self._present:
            self.load_mask(sample_id)
        return self._present[sample_id]

    def _decode(self, raw: np.ndarray, mode: str, sample: Sample) -> np.ndarray:
        if raw.ndim == 3 and raw.shape[2] == 1:
            raw = raw[..., 0]
        if self.mask_mode != "index":
            fg = raw.max(axis=2) if raw.ndim == 3 else raw
            fg = fg > 0 if self.mask_mode == "any" else fg >= 128
            return fg.astype(np.int64) * sample.label
        if raw.ndim == 3:
            if not (raw == raw[..., :1]).all():
                raise AutoNADError(f"{sample.mask}: colour mask ({mode}); expected one channel of class indices")
            raw = raw[..., 0]
        values = np.flatnonzero(np.bincount(raw.ravel(), minlength=1)) if raw.dtype == np.uint8 else np.unique(raw)
        if self.binary255 and set(values.tolist()) <= {0, 255}:
            return (raw > 0).astype(np.int64)
        bad = [int(v) for v in values if (v < 0 or v >= self.num_classes) and v != IGNORE]
        if bad:
            hint = "; palette indices must be class ids" if mode == "P" else ""
            raise AutoNADError(
                f"{sample.mask}: mask value {bad[0]} outside the class ids 0..{self.num_classes - 1} "
                f"(255 = ignore){hint}"
            )
        return raw.astype(np.int64)

    def _check_size(self, sample_id: str, image_hw: tuple[int, ...], mask_hw: tuple[int, ...]) -> None:
        if tuple(image_hw) != tuple(mask_hw):
            s = self.sample(sample_id)
            raise AutoNADError(
                f"{s.mask}: mask is {mask_hw[1]}x{mask_hw[0]} (WxH) but image {s.image.name} is "
                f"{image_hw[1]}x{image_hw[0]}"
            )

    # ---------------------------------------------------------------- checking

    def check_sample(self, sample_id: str) -> SampleInfo:
        """Decode image and mask once, check they agree; raises AutoNADError naming the file."""
        height, width = io.check_image(self.sample(sample_id).image)
        return self._info(sample_id, (height, width), self.load_mask(sample_id))

    def _info(self, sample_id: str, image_hw: tuple[int, ...], mask: np.ndarray) -> SampleInfo:
        self._check_size(sample_id, image_hw, mask.shape)
        counts = np.bincount(mask.ravel(), minlength=IGNORE + 1)  # decoded masks hold 0..num_classes-1 and 255
        pixels = (*counts[: self.num_classes].tolist(), int(counts[IGNORE]))
        return SampleInfo(sample_id, int(image_hw[0]), int(image_hw[1]), pixels)

    def verify(self, skip_bad: bool | None = None) -> list[SampleInfo]:
        """Read every file once (with progress). A bad file raises, or with skip_bad is dropped and listed
        in `bad`. Results are cached, so a second call costs nothing."""
        problems = Problems(self.problems.skip if skip_bad is None else skip_bad)
        for sample_id, message in self._check_each(list(self.samples), f"checking {self.name}"):
            problems.report(message, sample_id)
            self.drop(sample_id)
        self.problems.items.extend(problems.items)
        self.problems.ids |= problems.ids
        return [self._infos[i] for i in self.samples]

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed (or reused) run checks it trains on the same data: the resolved root, the
        sample ids, and a hash of every file's size plus the bytes of up to 16 evenly spaced samples."""
        ids = sorted(self.samples)
        digest = hashlib.sha256()
        for sample_id in ids:
            sample = self.samples[sample_id]
            digest.update(f"{sample_id}:{_file_size(sample.image)}:{_file_size(sample.mask)}\n".encode())
        for sample_id in ids[:: max(1, len(ids) // 16)][:16]:
            for path in (self.samples[sample_id].image, self.samples[sample_id].mask):
                if path.is_file():
                    digest.update(path.read_bytes())
        root = str(self.root.resolve()) if self.root is not None else None
        return {"name": self.name, "root": root, "ids": ids, "content": digest.hexdigest()[:16]}

    def check_split(self, split: str) -> list[str]:
        """Read every file of a split once; drop its bad samples and return their messages (so an
        evaluation covers every good one and can list the rest)."""
        bad = []
        for sample_id, message in self._check_each(list(self.splits[split]), f"checking {self.name} {split}"):
            bad.append(message)
            self.drop(sample_id)
        return bad

    def _check_each(self, ids: list[str], label: str) -> Iterator[tuple[str, str]]:
        """Decode each sample of `ids` not checked yet (with progress), caching what it learns; yields
        (id, message) for the bad ones."""
        for sample_id in track([i for i in ids if i not in self._infos], label):
            try:
                self._infos[sample_id] = self.check_sample(sample_id)
            except AutoNADError as e:
                yield sample_id, str(e)

    def drop(self, sample_id: str) -> None:
        """Remove a (bad) sample from the dataset and from any split."""
        self.samples.pop(sample_id, None)
        self._infos.pop(sample_id, None)
        for part in [*self.official.values(), *(self._splits or {}).values()]:
            if sample_id in part:
                part.remove(sample_id)

    # ---------------------------------------------------------------- splits

    @property
    def splits(self) -> dict[str, list[str]]:
        """{"train": ids, "val": ids, "test": ids}; see `split_origin` for where they come from."""
        if self._splits is None:
            splits, origin = plan_splits(self.ids, self.official, self.strat_keys, self.seed)
            check_splits(splits, f"{self.name} ({origin}; {len(self.samples)} samples)")
            self._splits, self.split_origin = splits, origin
        return self._splits

    def strat_keys(self, ids: Sequence[str]) -> dict[str, str]:
        """Stratification key per sample: its rarest defect class present, or "defect-free"."""
        groups = {i: self.samples[i].group for i in ids}
        unread = [i for i, g in groups.items() if g is None and i not in self._present]
        if unread:
            for sample_id in track(unread, f"reading {self.name} masks for the split"):
                self.present(sample_id)
        counts = Counter(c for i, g in groups.items() if g is None for c in self._present[i])
        keys = {}
        for i, group in groups.items():
            if group is not None:
                keys[i] = group
            else:
                present = self._present[i]
                keys[i] = self.classes[min(present, key=lambda c: (counts[c], c))] if present else DEFECT_FREE
        return keys

    def use_split(self, path: str | Path) -> None:
        """Reuse a recorded split.json exactly (bad samples dropped with skip_bad are left out)."""
        record = read_split(path)
        if record.get("dataset") not in (None, self.name):
            raise AutoNADError(f"{path}: split is for dataset '{record['dataset']}', not '{self.name}'")
        for name in SPLITS:
            for sample_id in record["splits"][name]:
                if sample_id not in self.samples and sample_id not in self.problems.ids:
                    raise AutoNADError(f"{path}: sample '{sample_id}' ({name}) is not in dataset {self.name}")
        splits = {s: [i for i in record["splits"][s] if i in self.samples] for s in SPLITS}
        check_splits(splits, str(path))
        self._splits, self.split_origin = splits, f"{record.get('origin', 'recorded')} (from {path})"

    def split_record(self) -> dict:
        splits = self.splits  # plans them (and sets split_origin) on first use
        root = self.root.resolve() if self.root is not None else None  # run files hold absolute paths
        return split_record(self.name, root, self.seed, self.split_origin, splits)

    def save_split(self, path: str | Path) -> Path:
        """Write split.json (dataset, root, seed, origin, ids per split)."""
        return write_split(path, self.split_record())
