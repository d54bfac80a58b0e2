"""TensorBoard scalars of training and search runs (`torch.utils.tensorboard`), under `<run>/tensorboard`.

A resumed run purges what the stopped one logged after its last checkpoint (`purge_step`), and a new
run what an earlier one left in the folder, so the curves show each step once, as an uninterrupted
run would have logged them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

LOG_DIR = "tensorboard"


class ScalarLog:
    """Numeric scalars by tag and step; nested mappings become `a/b/c` tags, everything else is skipped."""

    def __init__(self, run_dir: str | Path, logged_until: int = 0):
        """`logged_until`: the last step a resumed run had checkpointed (0: a new run); events of later
        steps (all of them for a new run over an old folder's logs) are purged."""
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(run_dir) / LOG_DIR
        self._writer = SummaryWriter(str(self.path), purge_step=logged_until + 1)

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        for tag, value in flat_scalars(values, prefix):
            self._writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def flat_scalars(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(tag, value) of every finite number in a nested mapping (booleans and lists are not scalars)."""
    for key, value in values.items():
        tag = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from flat_scalars(value, tag)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield tag, float(value)


def open_log(run_dir: str | Path, enabled: bool, logged_until: int = 0) -> ScalarLog | None:
    """A `ScalarLog` for the run, or None when TensorBoard logging is off."""
    return ScalarLog(run_dir, logged_until) if enabled else None
