"""Train/val/test splits: official where the dataset has them, otherwise carved deterministically.

Carving is class-stratified and seeded: samples are grouped by a key (their defect class, or
"defect-free"), each group is shuffled with a generator derived from (seed, key) and divided by
largest remainder, giving every split at least one member of a group whenever the group is large
enough. Missing splits are carved from the official train list when there is one (15% each),
otherwise from everything (70/15/15). The result is written as `split.json` next to a run so every
stage reuses exactly the same images.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autonad.config import write_text_atomic
from autonad.errors import AutoNADError

SPLITS = ("train", "val", "test")
CARVE_FRACTION = 0.15  # share of the pool that each missing val/test split receives
DEFECT_FREE = "defect-free"


def stratified_split(
    ids: Sequence[str], keys: Mapping[str, str], fractions: Mapping[str, float], seed: int
) -> dict[str, list[str]]:
    """Divide `ids` into parts of the given fractions, stratified by `keys[id]`; order follows `ids`."""
    groups: dict[str, list[str]] = {}
    for sample_id in ids:
        groups.setdefault(keys[sample_id], []).append(sample_id)
    parts: dict[str, list[str]] = {name: [] for name in fractions}
    for g, key in enumerate(sorted(groups)):
        members = list(groups[key])
        random.Random(f"autonad-split/{seed}/{key}").shuffle(members)
        start = 0
        for name, count in zip(fractions, _allocate(len(members), list(fractions.values()), g)):
            parts[name].extend(members[start : start + count])
            start += count
    order = {sample_id: i for i, sample_id in enumerate(ids)}
    return {name: sorted(part, key=order.__getitem__) for name, part in parts.items()}


def _allocate(n: int, fractions: list[float], turn: int = 0) -> list[int]:
    """Largest-remainder counts summing to n; each part gets one member when n >= number of parts.
    Ties go round-robin by `turn` (the group's number), so equal fractions stay balanced overall."""
    total = sum(fractions)
    exact = [n * f / total for f in fractions]
    counts = [math.floor(e) for e in exact]
    k = len(counts)
    by_remainder = sorted(range(k), key=lambda i: (round(counts[i] - exact[i], 9), (i - turn) % k))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    if n >= k:
        for i, count in enumerate(counts):
            if count == 0:
                counts[max(range(k), key=counts.__getitem__)] -= 1
                counts[i] = 1
    return counts


def plan_splits(
    ids: Sequence[str], official: Mapping[str, list[str]], keys_for, seed: int
) -> tuple[dict[str, list[str]], str]:
    """The train/val/test ids and a one-line description of where they come from.

    `keys_for(ids) -> {id: key}` is called only for the ids that are actually carved.
    """
    missing = [s for s in SPLITS if s not in official]
    if not missing:
        return {s: list(official[s]) for s in SPLITS}, "official"
    listed = {i for part in official.values() for i in part}
    pool = list(official["train"]) if "train" in official else [i for i in ids if i not in listed]
    carved_parts = [s for s in missing if s != "train"]
    fractions = {"train": 1.0 - CARVE_FRACTION * len(carved_parts)} | {s: CARVE_FRACTION for s in carved_parts}
    carved = stratified_split(pool, keys_for(pool), fractions, seed)
    splits = {s: carved[s] if s in carved else list(official[s]) for s in SPLITS}
    shares = "/".join(f"{round(100 * f)}" for f in fractions.values())
    how = f"stratified by defect class, seed {seed}"
    if not official:
        return splits, f"generated {shares} train/{'/'.join(carved_parts)} ({how})"
    source = "official train" if "train" in official else "the samples in no official split"
    carved_text = " and ".join(f"{s} ({round(100 * CARVE_FRACTION)}%)" for s in carved_parts) or "train"
    return splits, f"official {'/'.join(official)}; {carved_text} carved from {source} ({how})"


def check_splits(splits: Mapping[str, list[str]], where: str) -> None:
    """Every split non-empty and no sample in two splits."""
    seen: dict[str, str] = {}
    for name in SPLITS:
        if not splits.get(name):
            raise AutoNADError(f"{where}: split '{name}' is empty")
        for sample_id in splits[name]:
            if sample_id in seen:
                raise AutoNADError(f"{where}: sample '{sample_id}' is in both '{seen[sample_id]}' and '{name}'")
            seen[sample_id] = name


def split_record(dataset: str, root: Path | None, seed: int, origin: str, splits: Mapping[str, list[str]]) -> dict:
    return {
        "dataset": dataset,
        "root": str(root) if root is not None else None,
        "seed": seed,
        "origin": origin,
        "counts": {s: len(splits[s]) for s in SPLITS},
        "splits": {s: list(splits[s]) for s in SPLITS},
    }


def write_split(path: str | Path, record: dict) -> Path:
    path = Path(path)
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path


def read_split(path: str | Path) -> dict[str, Any]:
    """A split.json written by `write_split`, checked for shape."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AutoNADError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AutoNADError(f"{path}: not a readable split file ({e.__class__.__name__})") from None
    splits = record.get("splits") if isinstance(record, dict) else None
    if not isinstance(splits, dict) or not all(isinstance(splits.get(s), list) for s in SPLITS):
        raise AutoNADError(f"{path}: not a split file (needs 'splits' with lists 'train', 'val' and 'test')")
    if not all(isinstance(i, str) for s in SPLITS for i in splits[s]):
        raise AutoNADError(f"{path}: sample ids must be strings")
    check_splits(splits, str(path))
    return record
