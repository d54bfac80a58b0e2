"""Shared fixtures. Real datasets live in ../shared/datasets and are never copied."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

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
