"""Defects as objects: connected components of a class map, and the QC rules a line puts on them.

A defect instance is an 8-connected component of one defect class in a predicted (or GT) mask. QC
rules (`QCRule`, part of a model's decision) say which instances fail a part: at least `min_area`
pixels, and for a class given in `fail_area`, more than that many pixels ("fail when a scratch
exceeds 40 px"). Areas are in pixels of the image as the user gave it; `pixel_size` (mm per pixel)
adds the physical area.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from autonad.errors import AutoNADError

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Instance:
    class_name: str
    class_id: int
    area: int  # pixels
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)
    score: float | None = None  # the highest probability of its class inside it
    area_mm2: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"class": self.class_name, "area": self.area, "bbox": list(self.bbox), "score": self.score}
        if self.area_mm2 is not None:
            out["area_mm2"] = self.area_mm2
        return out


@dataclass(frozen=True)
class QCRule:
    min_area: float = 0  # smaller instances are ignored (pixels)
    fail_area: dict[str, float] = field(default_factory=dict)  # class -> a defect fails the part above this area

    @property
    def active(self) -> bool:
        return bool(self.min_area or self.fail_area)

    def check(self, classes: list[str], where: str) -> None:
        unknown = [c for c in self.fail_area if c not in classes[1:]]
        if unknown:
            raise AutoNADError(f"{where}: fail area for '{unknown[0]}', which is not a defect class of the model "
                               f"({', '.join(classes[1:])})")  # fmt: skip
        if self.min_area < 0 or any(a < 0 for a in self.fail_area.values()):
            raise AutoNADError(f"{where}: areas must be >= 0")

    def counts(self, class_name: str, area: float) -> bool:
        """Whether an instance of this class and area (in the user's pixels) fails the part."""
        return area >= self.min_area and area > self.fail_area.get(class_name, -1)

    def class_fails(self, found: Iterable[tuple[str, float]], classes: list[str]) -> np.ndarray:
        """Per defect class of `classes` (background first), whether one of the `found` (class name, area)
        instances of that class fails the part: the QC gate of each class's own decision."""
        fails = np.zeros(len(classes) - 1, dtype=bool)
        for name, area in found:
            if self.counts(name, area):
                fails[classes.index(name) - 1] = True
        return fails

    def to_dict(self) -> dict[str, Any]:
        return {"min_area": self.min_area, "fail_area": dict(self.fail_area)}


def components(mask: np.ndarray, num_classes: int) -> list[tuple[int, np.ndarray]]:
    """(class id, boolean pixel map) of every 8-connected defect component of a class map `[H, W]`."""
    found = []
    for c in range(1, num_classes):
        labelled, n = ndimage.label(mask == c, structure=EIGHT_CONNECTED)
        found += [(c, labelled == k) for k in range(1, n + 1)]
    return found


def find_instances(
    mask: np.ndarray,
    classes: list[str],
    probs: np.ndarray | None = None,
    pixel_size: float | None = None,
    min_area: float = 0,
) -> list[Instance]:
    """Every defect instance of a predicted class map `[H, W]` (with per-class probabilities `[C, H, W]`
    for its score), largest first; those under `min_area` pixels left out."""
    out = []
    for c, pixels in components(mask, len(classes)):
        area = int(pixels.sum())
        if area < min_area:
            continue
        ys, xs = np.nonzero(pixels)
        score = float(probs[c][pixels].max()) if probs is not None else None
        mm2 = area * pixel_size**2 if pixel_size else None
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        out.append(Instance(classes[c], c, area, bbox, score, mm2))
    return sorted(out, key=lambda i: (-i.area, i.bbox))


@dataclass
class InstanceCounts:
    """Instance-level recall and precision per defect class: a GT instance is found when a predicted
    pixel of its class overlaps it; a predicted instance (of at least `min_area` pixels) is right when
    it overlaps a GT pixel of its class."""

    gt: np.ndarray
    found: np.ndarray
    pred: np.ndarray
    right: np.ndarray

    @staticmethod
    def zeros(num_classes: int) -> InstanceCounts:
        return InstanceCounts(*(np.zeros(num_classes, dtype=np.int64) for _ in range(4)))

    def add(
        self, pred: np.ndarray, target: np.ndarray, classes: list[str], rule: QCRule, area_scale: float
    ) -> np.ndarray:
        """Count one sample's instances (class maps `[H, W]`, each map pixel `area_scale` of the user's
        pixels); returns per defect class whether a predicted instance fails the part by `rule`."""
        for c, pixels in components(target, len(classes)):
            self.gt[c] += 1
            self.found[c] += bool((pred[pixels] == c).any())
        kept = []
        for c, pixels in components(pred, len(classes)):
            area = float(pixels.sum()) * area_scale
            if area < rule.min_area:
                continue
            kept.append((classes[c], area))
            self.pred[c] += 1
            self.right[c] += bool((target[pixels] == c).any())
        return rule.class_fails(kept, classes)

    def merge(self, other: InstanceCounts) -> None:
        for name in ("gt", "found", "pred", "right"):
            getattr(self, name).__iadd__(getattr(other, name))

    def to_dict(self, classes: list[str]) -> dict[str, Any]:
        def ratio(a, b):
            return float(a) / float(b) if b else None

        per_class = {name: {"recall": ratio(self.found[c], self.gt[c]), "precision": ratio(self.right[c], self.pred[c]),
                            "gt": int(self.gt[c]), "pred": int(self.pred[c])}
                     for c, name in enumerate(classes) if c}  # fmt: skip
        return {"recall": ratio(self.found[1:].sum(), self.gt[1:].sum()),
                "precision": ratio(self.right[1:].sum(), self.pred[1:].sum()),
                "gt": int(self.gt[1:].sum()), "pred": int(self.pred[1:].sum()), "per_class": per_class}  # fmt: skip
