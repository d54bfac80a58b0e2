"""Atomic, safely loadable checkpoints with everything needed to resume bit for bit.

Files are written to a temp file beside the target, fsynced and renamed, so a kill at any
moment leaves either the previous checkpoint or the new one, never half a file. Loading uses
`torch.load(weights_only=True)`: a checkpoint holds tensors and plain Python values only, so
RNG states are converted to those (numpy's state contains an ndarray, which would need pickle).
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autonad.config import write_atomic
from autonad.errors import AutoNADError, reason


def save_atomic(payload: dict[str, Any], path: str | os.PathLike) -> None:
    write_atomic(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Load a checkpoint written by `save_atomic`; `kind` must match its `format` entry."""
    path = Path(path)
    if not path.is_file():
        raise AutoNADError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; torch's own error would be misleading
        raise AutoNADError(f"{path}: not a readable checkpoint (truncated, corrupt or not saved by AutoNAD)")
    try:
        # mmap: reading one entry (e.g. the epoch of a 275 MB supernet run) no longer reads the whole file
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise AutoNADError(
            f"{path}: not a readable checkpoint (corrupt or not saved by AutoNAD: {reason(e, 120)})"
        ) from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise AutoNADError(f"{path}: not an AutoNAD checkpoint")
    if payload["format"] != kind:
        raise AutoNADError(f"{path}: is a '{payload['format']}' checkpoint, expected '{kind}'")
    return payload


def rng_state() -> dict[str, Any]:
    """States of Python's, numpy's and torch's global generators, as plain values and tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(restore_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():  # as many GPUs as both runs see (a resume may see fewer)
        for index, cuda in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, index)


def restore_tuples(value: Any) -> Any:
    """random.setstate needs tuples; a serialised state may come back with lists."""
    if isinstance(value, (list, tuple)):
        return tuple(restore_tuples(v) for v in value)
    return value
