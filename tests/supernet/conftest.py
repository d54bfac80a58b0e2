"""Shared fixtures for the supernet tests: small inputs, few threads, supernets built once."""

from __future__ import annotations

import random

import pytest
import torch

from autonad.space import Arch, HeadsArch, SearchSpace
from autonad.supernet import Supernet, SupernetConfig


@pytest.fixture(scope="session")
def autonad_net() -> Supernet:
    torch.manual_seed(0)
    return Supernet(SupernetConfig.load("autonad"), num_classes=3).eval()


@pytest.fixture(scope="session")
def tiny_net() -> Supernet:
    torch.manual_seed(0)
    return Supernet(SupernetConfig.load("tiny"), num_classes=4).eval()


def _some_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    """Largest and smallest (CaP on) plus ``n`` seeded random archs with CaP on or off."""
    rng = random.Random(seed)
    archs = [space.largest(heads=HeadsArch(cap=True)), space.smallest(heads=HeadsArch(cap=True))]
    return archs + [space.sample(rng, heads=HeadsArch(cap=rng.random() < 0.5)) for _ in range(n)]


def _max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="session")
def some_archs():
    return _some_archs


@pytest.fixture(scope="session")
def max_abs_diff():
    return _max_abs_diff
