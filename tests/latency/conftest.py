"""Shared set-up for the latency tests: a small synthetic table."""

from __future__ import annotations

from autonad.latency.components import ComponentFactory
from autonad.latency.table import Calibration, Profile
from autonad.space import SearchSpace


def synthetic_profile(space: SearchSpace, cost: dict[str, float] | None = None, size=(64, 64)) -> Profile:
    """A complete profile whose entries are a known function of the key (no timing): a block
    costs `cost[choice]` (default 1 ms), everything else 0.1 ms."""
    cost = cost or {}
    entries = {}
    for comp in ComponentFactory(space, size, 1, [2, 3]).components():
        choice = comp.key.split(" ")[0].split(".")[-1]
        entries[comp.key] = cost.get(choice, 1.0) if comp.kind.startswith("block") else 0.1
    return Profile(search_space=space.name, input_size=list(size), batch=1, provenance="measured", method="test",
                   hardware="test", runtime={"threads": 1}, date="2026-01-01", classes=[2, 3], complete=True,
                   calibration=Calibration(), entries=entries)  # fmt: skip
