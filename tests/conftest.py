"""Shared fixtures. Real datasets live in ../shared/datasets and are never copied."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("AUTONAD_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (set AUTONAD_SHARED_DATASETS)")
    return SHARED_DATASETS


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Two cores shared with other work: more than one torch thread can be far slower, and
    timing-sensitive code (profiles, benchmarks) pins its own count anyway."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def wide_console():
    """Tests read tables from captured output: keep rich from wrapping them at 80 columns."""
    from autonad import ui

    old = ui.console.width, ui.err_console.width
    ui.console.width = ui.err_console.width = 200
    yield
    ui.console.width, ui.err_console.width = old


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray session (2 CPUs) for every Ray test (search workers, tuning trials); they join it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             logging_level=logging.ERROR)  # fmt: skip
    yield ray
    ray.shutdown()


SEARCH_RECIPE = {"name": "report-test", "dataset": "folder", "supernet": "tiny", "normalise": "dataset",
          "transform": {"size": [32, 32], "hflip": True},
          "train": {"epochs": 2, "batch_size": 4, "val_every": 1, "latency_every": 0, "cap": False, "seed": 3},
          "search": {"population": 4, "generations": 2, "parents": 2, "val_images": 4}}  # fmt: skip


@pytest.fixture(scope="session")
def search_run(tmp_path_factory) -> tuple[Path, str]:
    """(run folder, dataset argument) of one tiny finished search (folder dataset, roofline table),
    run from its own working folder; shared by the report and TensorBoard tests."""
    from autonad.cli import main
    from autonad.data import SyntheticSource
    from autonad.data.folder import write_folder

    root = tmp_path_factory.mktemp("report")
    data = write_folder(SyntheticSource(n=24, size=40, seed=1), root / "data")
    (root / "recipe.yaml").write_text(yaml.safe_dump(SEARCH_RECIPE, sort_keys=False))
    table = root / "test-gpu.yaml"
    old = os.getcwd()
    os.chdir(root)
    try:
        assert main(["profile", "--hw", "rtx3090", "--roofline", "--search-space", "tiny", "--input-size", "32x32",
                     "--classes", "4", "--out", str(table)]) == 0  # fmt: skip
        assert main(["search", "--dataset", f"folder:{data}", "--recipe", "recipe.yaml", "--hw", str(table),
                     "--out", "run", "--workers", "0", "--seed", "1"]) == 0  # fmt: skip
    finally:
        os.chdir(old)
    return root / "run", f"folder:{data}"
