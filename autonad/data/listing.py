"""Helpers the format readers share: required folders, files by stem, image/mask pairing, text lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from autonad.data import io
from autonad.data.base import Problems, track
from autonad.errors import AutoNADError


def require_dir(path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise AutoNADError(f"{path}: folder not found ({layout})")
    return path


def index_by_stem(
    folder: Path,
    problems: Problems,
    exts: Iterable[str] = io.IMAGE_EXTS,
    key: Callable[[str], str | None] = lambda stem: stem,
) -> dict[str, Path]:
    """Image files of `folder` by key(stem) (None skips a file), sorted; two files with one key are bad."""
    exts = tuple(exts)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not (io.is_image_file(path) and path.suffix.lower() in exts):
            continue
        name = key(path.stem)
        if name is None:
            continue
        if name in found:
            problems.report(f"{path}: two files for one sample ({found[name].name} and {path.name})", name)
            continue
        found[name] = path
    return found


def pair_files(
    images: dict[str, Path],
    masks: dict[str, Path],
    problems: Problems,
    expected_mask: Callable[[str], str],
    prefix: str = "",
) -> list[tuple[str, Path, Path]]:
    """(sample id, image, mask) for every stem; an image without mask or a mask without image is bad."""
    pairs = []
    for stem, image in images.items():
        if stem in masks:
            pairs.append((prefix + stem, image, masks[stem]))
        else:
            problems.report(f"{image}: image has no mask (expected {expected_mask(stem)})", prefix + stem)
    for stem, mask in masks.items():
        if stem not in images:
            problems.report(f"{mask}: mask has no image", prefix + stem)
    return pairs


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AutoNADError(f"{path}: cannot read ({e.__class__.__name__})") from None


def read_lines(path: Path) -> list[str]:
    """Non-empty lines (first word of each) of a text file such as a split list or classes.txt."""
    text = read_text(path)
    return [line.split()[0] for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_split_list(path: Path, split: str) -> list[str]:
    ids = read_lines(path)
    if not ids:
        raise AutoNADError(f"{path}: split '{split}' is empty (no sample ids)")
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AutoNADError(f"{path}: sample '{dup}' is listed twice")
    return ids


def read_official(files: dict[str, Path]) -> dict[str, list[str]]:
    """Official split lists ({split: file}, missing files skipped); a sample in two lists is an error."""
    official: dict[str, list[str]] = {}
    seen: dict[str, Path] = {}
    for split, path in files.items():
        if not path.is_file():
            continue
        official[split] = read_split_list(path, split)
        for sample_id in official[split]:
            if sample_id in seen:
                raise AutoNADError(f"{path}: sample '{sample_id}' is also listed in {seen[sample_id].name}")
            seen[sample_id] = path
    return official


def read_classes(path: Path) -> list[str]:
    """classes.txt: one class name per line, index 0 = background."""
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise AutoNADError(f"{path}: class names repeat")
    if len(names) < 2:
        raise AutoNADError(f"{path}: needs at least 2 classes (background first, then the defect classes)")
    return names


def scan_mask_values(pairs: list[tuple[str, Path, Path]], problems: Problems) -> tuple[set[int], list]:
    """Union of the raw values of all masks (to name classes when there is no classes.txt)."""
    values: set[int] = set()
    good = []
    for pair in track(pairs, "reading masks for the class list"):
        try:
            raw, _ = io.read_mask_raw(pair[2])
        except AutoNADError as e:
            problems.report(str(e), pair[0])
            continue
        values.update(np.unique(raw).tolist())
        good.append(pair)
    return values, good
