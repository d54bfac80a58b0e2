"""Shared fixtures for the supernet tests: small inputs, few threads, supernets built once."""

from __future__ import annotations

import dataclasses
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


@pytest.fixture(scope="session")
def autonad_fine_net() -> Supernet:
    """The conv stem and the two-level detail path (the voc:/folder: default)."""
    torch.manual_seed(0)
    return Supernet(SupernetConfig.load("autonad-fine"), num_classes=3).eval()


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


def _with_detail(arch: Arch, detail: int) -> Arch:
    return dataclasses.replace(arch, decoder=dataclasses.replace(arch.decoder, detail=detail))


@pytest.fixture(scope="session")
def detail_space() -> SearchSpace:
    """The tiny space with the head's detail path as a choice (widths 0, 8 and 16)."""
    tiny = SearchSpace.load("tiny")
    return dataclasses.replace(tiny, decoder=dataclasses.replace(tiny.decoder, detail=[0, 8, 16]))


@pytest.fixture(scope="session", params=[1, 2], ids=["one-level", "two-level"])
def detail_net(request, detail_space) -> Supernet:
    """A supernet on `detail_space` with the one-level detail path (at 1/2 resolution) or the
    two-level one (full and 1/2 resolution, `detail_levels: 2`)."""
    space = detail_space
    if request.param == 2:
        space = dataclasses.replace(space, decoder=dataclasses.replace(space.decoder, detail_stride=1, detail_levels=2))
    torch.manual_seed(0)
    return Supernet(SupernetConfig.load("tiny"), num_classes=4, space=space).eval()


@pytest.fixture(scope="session")
def with_detail():
    return _with_detail
