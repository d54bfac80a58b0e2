"""Search test set-up: cheap synthetic evaluators, a fake-but-valid tiny supernet checkpoint, one Ray session.

The evolution tests score archs with a deterministic function of the arch (no network), so a
generation takes milliseconds. The evaluation tests use an untrained `tiny` supernet saved in the
trainer's checkpoint format, on a small `folder:` dataset, and share ONE local Ray session
(two CPUs, `ray_session` in tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from autonad.config import from_mapping, to_mapping
from autonad.data import SyntheticSource, open_dataset
from autonad.data.folder import write_folder
from autonad.search import Evaluator, SearchConfig
from autonad.search.evaluate import SUPERNET_FORMAT, EvalSettings
from autonad.space import Arch, SearchSpace
from autonad.supernet import Supernet, SupernetConfig
from autonad.train.checkpoint import save_atomic
from autonad.train.recipe import Recipe

OP_MS = {"transformer": 1.0, "conv3": 0.5, "conv5": 0.7, "mlp": 0.3}
EDGE_MS = {"conv1x1": 0.05, "conv3x3": 0.2, "conv5x5": 0.4, "dil3x3": 0.2, "dwsep3x3": 0.1}
RECIPE = {"name": "tiny-search-test", "dataset": "folder", "supernet": "tiny", "normalise": "config",
          "transform": {"size": [32, 32]}, "train": {"epochs": 1, "batch_size": 4, "seed": 3}}  # fmt: skip


# ----------------------------------------------------------------------------- synthetic evaluation
def fake_latency(arch: Arch) -> float:
    """A made-up latency (ms): heavier ops, wider stages and a wider decoder cost more."""
    ms = sum(OP_MS[b.choice] * st.width / 16 for st in arch.stages for b in st.blocks)
    return ms + sum(EDGE_MS[e] for e in arch.decoder.edges) * arch.decoder.width / 32


def fake_metrics(arch: Arch) -> dict[str, Any]:
    """Deterministic 'metrics' that reward width, depth and transformers (so evolution can climb)
    plus a little hash noise, so no two archs tie."""
    blocks = [b for st in arch.stages for b in st.blocks]
    width = sum(st.width for st in arch.stages) / 176  # tiny: widest is 32+32+48+64
    share = sum(b.op == "transformer" for b in blocks) / len(blocks)
    noise = int(arch.hash[:8], 16) / 2**32
    miou = 0.4 * width + 0.3 * share + 0.05 * len(blocks) / 8 + 0.05 * noise
    return {"miou": miou, "mf1": miou * 0.9, "sample_miou": None, "seg_recall": 0.5 + 0.1 * noise}


class CountingEvaluator(Evaluator):
    """fake_metrics, recording every arch it is asked for; raises in its `fail_on`-th imap call
    (1-based, one call per generation) after `fail_after` results, to simulate a kill."""

    def __init__(self, fail_on: int | None = None, fail_after: int = 2):
        self.calls: list[Arch] = []
        self.imaps = 0
        self.fail_on, self.fail_after = fail_on, fail_after

    def imap(self, archs: Sequence[Arch]) -> Iterator[tuple[int, dict[str, Any]]]:
        self.imaps += 1
        for i, arch in enumerate(archs):
            if self.imaps == self.fail_on and i == self.fail_after:
                raise KeyboardInterrupt("killed")
            self.calls.append(arch)
            yield i, fake_metrics(arch)


@pytest.fixture(scope="session")
def tiny_space() -> SearchSpace:
    return SearchSpace.load("tiny")


@pytest.fixture(scope="session")
def autonad_space() -> SearchSpace:
    return SearchSpace.load("autonad")


def small_config(**changes) -> SearchConfig:
    return SearchConfig(**{"population": 12, "generations": 4, "parents": 4, "seed": 5, **changes})


# ----------------------------------------------------------------------------- a tiny supernet run folder
@dataclass
class TinyCheckpoint:
    run: Path
    checkpoint: Path
    data: Path
    dataset: str  # folder:<data>

    def settings(self, **changes) -> EvalSettings:
        return EvalSettings(**{"checkpoint": str(self.checkpoint), "dataset": self.dataset, **changes})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> TinyCheckpoint:
    """An untrained tiny supernet in the trainer's checkpoint format, its split.json and a folder dataset."""
    data = tmp_path_factory.mktemp("search-data")
    write_folder(SyntheticSource(n=24, size=40, seed=1, defect_free=0.3), data)

    run = tmp_path_factory.mktemp("search-supernet")
    recipe = from_mapping(Recipe, RECIPE, "test recipe")
    folder = open_dataset(f"folder:{data}", seed=recipe.train.seed)
    folder.save_split(run / "split.json")
    config = SupernetConfig.load("tiny")
    torch.manual_seed(0)
    net = Supernet(config, folder.num_classes)
    payload = {
        "format": SUPERNET_FORMAT,
        "supernet_config": to_mapping(config),
        "recipe": recipe.to_dict(),
        "classes": list(folder.classes),
        "normalisation": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "model": net.state_dict(),
        "state": {"epoch": 1, "step_in_epoch": 0, "global_step": 7},
    }
    save_atomic(payload, run / "checkpoint.pt")
    return TinyCheckpoint(run, run / "checkpoint.pt", data, f"folder:{data}")
