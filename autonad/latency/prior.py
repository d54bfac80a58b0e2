"""The latency prior of paper Algorithm 1 / Fig. 5: per block position and decoder edge, P(op).

    P(op at position) = softmax(-latency(op at position) / (T * mean latency at position))

The temperature is relative to the position's mean op latency, so one T means the same
preference on a Jetson and on a server. A block position's op latency is the mean of its table
entries over the stage's widths and FFN ratios; an edge's over its input/output widths (and
pool sizes for PPM branches). `from_records` fits the same per-(stage, op) and per-edge costs to
the training-time latency records instead of reading a table (SPEC section 6).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autonad.errors import AutoNADError
from autonad.latency import components as c
from autonad.latency.table import Profile
from autonad.space import EDGE_NAMES, Arch, SearchSpace


@dataclass
class LatencyPrior:
    space: SearchSpace
    costs: dict[str, dict[str, float]]  # gene name -> choice -> ms (op genes and edge genes)
    temperature: float
    source: str  # what the costs came from, for titles and summaries

    @property
    def gene_weights(self) -> dict[str, list[float]]:
        """Gene name -> probabilities over that gene's choices (for `SearchSpace.sample`)."""
        out = {}
        for gene in self.space.genes:
            if gene.name in self.costs:
                out[gene.name] = op_probabilities(self.costs[gene.name], gene.choices, self.temperature)
        return out

    # -- sources ----------------------------------------------------------------------------
    @staticmethod
    def from_profile(profile: Profile, space: SearchSpace, temperature: float = 1.0, source: str = "") -> LatencyPrior:
        if temperature <= 0:
            raise AutoNADError(f"prior temperature must be positive, got {temperature}")
        e, dec = profile.entries, space.decoder
        costs: dict[str, dict[str, float]] = {}
        for s, st in enumerate(space.stages, start=1):
            for choice in st.op_choices:
                ms = _mean(e, [c.block_key(s, choice, w, r) for w in st.width for r in st.ffn_ratio])
                for b in range(1, max(st.depth) + 1):
                    costs.setdefault(f"s{s}.b{b}.op", {})[choice] = ms
        tops = space.stages[3].width
        for op in dec.edge_ops:
            ppm = _mean(e, [c.ppm_key(op, t, p) for t in tops for p in dec.pool_sizes])
            for i in range(1, dec.pool_branches + 1):
                costs.setdefault(f"dec.ppm{i}", {})[op] = ppm
            for level in (1, 2, 3):
                ins = space.stages[level - 1].width
                lateral = [c.lateral_key(level, op, ci, w) for ci in ins for w in dec.width]
                costs.setdefault(f"dec.lateral{level}", {})[op] = _mean(e, lateral)
                costs.setdefault(f"dec.fpn{level}", {})[op] = _mean(e, [c.fpn_key(level, op, w) for w in dec.width])
        return LatencyPrior(space, costs, temperature, source or f"table ({profile.provenance})")

    @staticmethod
    def from_records(
        records: Sequence[Mapping], space: SearchSpace, temperature: float = 1.0, ridge: float = 1e-2
    ) -> LatencyPrior:
        """Fit ms = const + sum over blocks cost[stage, op] + sum over edges cost[edge, op] to
        training-time latency records (`{"arch": dict, "ms": float}`) by ridge least squares."""
        if len(records) < 5:
            raise AutoNADError(f"fitting a prior needs at least 5 latency records, the checkpoint has {len(records)}")
        features = _record_features(space)
        index = {f: i for i, f in enumerate(features)}
        x = np.zeros((len(records), len(features) + 1))
        y = np.array([float(r["ms"]) for r in records])
        for row, record in enumerate(records):
            arch = Arch.from_dict(record["arch"], "latency record")
            for feature in _arch_features(arch):
                x[row, index[feature]] += 1.0
            x[row, -1] = 1.0
        a = x.T @ x + ridge * len(y) * np.eye(x.shape[1])
        coef = np.linalg.solve(a, x.T @ y)
        floor = 1e-3 * max(float(np.mean(y)), 1e-6)  # a fitted cost below zero is noise: clamp it
        costs: dict[str, dict[str, float]] = {}
        for (gene, choice), value in zip(features, coef[:-1]):
            if gene.startswith("stage"):
                s = int(gene[5:])
                for b in range(1, max(space.stages[s - 1].depth) + 1):
                    costs.setdefault(f"s{s}.b{b}.op", {})[choice] = max(float(value), floor)
            else:
                costs.setdefault(gene, {})[choice] = max(float(value), floor)
        return LatencyPrior(space, costs, temperature, f"fit to {len(y)} training latency records")

    # -- picture ----------------------------------------------------------------------------
    def heatmap(self, path: str | Path, title: str = "") -> None:
        """Paper Fig. 5: P(op) per block position (left) and decoder edge (right)."""
        from autonad.latency.plots import prior_heatmap

        prior_heatmap(self, path, title)


PRIOR_SOURCES = ("auto", "table", "records")


def choose_prior(
    source: str, profile: Profile, space: SearchSpace, records: Sequence[Mapping], temperature: float, label: str
) -> LatencyPrior:
    """The search's prior: from the target's table (`table`), fitted to the supernet's training
    latency records (`records`, paper IV-D), or `auto`: the records where the target's table is
    only an estimate and they were timed on the target device itself (its processor or GPU, eager
    PyTorch), enough to fit every cost twice over; else the table. A measured table wins: 300
    records of the demo supernet ranked the MFAM edges' costs like the table at Kendall tau 0.02
    (bench/prior_records.py). The prior's `source` says which and why."""
    if source not in PRIOR_SOURCES:
        raise AutoNADError(f"unknown prior source '{source}' (choose from {', '.join(PRIOR_SOURCES)})")
    table = LatencyPrior.from_profile(profile, space, temperature, f"table {label}")
    if source == "table":
        return table
    if source == "records":
        return LatencyPrior.from_records(records, space, temperature)
    unusable = _records_unusable(records, profile, space)
    if unusable:
        table.source += f" ({unusable})"
        return table
    prior = LatencyPrior.from_records(records, space, temperature)
    prior.source += ", timed on the target device"
    return prior


def _records_unusable(records: Sequence[Mapping], profile: Profile, space: SearchSpace) -> str | None:
    """Why `auto` does not take the records (None when it does)."""
    if not records:
        return "the supernet has no training latency records"
    if profile.provenance == "measured":
        return "measured per component on the target, it is more precise than training latency records"
    timed_on = str(records[-1].get("device", "?"))
    if _model(timed_on) != _model(profile.hardware) or profile.runtime_name != "torch":
        return f"its {len(records)} training latency records were timed on {timed_on}, not the target"
    needed = 2 * (len(_record_features(space)) + 1)
    if len(records) < needed:
        return f"{len(records)} training latency records are too few to fit {needed // 2} costs twice over"
    return None


def _model(device: str) -> str:
    """`device_name`'s processor or GPU model, without the core and thread counts."""
    return device.split(" (", 1)[0].strip()


def op_probabilities(costs: Mapping[str, float], choices: Sequence[str], temperature: float) -> list[float]:
    mean = statistics.fmean(costs[ch] for ch in choices)
    logits = [-costs[ch] / (temperature * mean) for ch in choices]
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    total = sum(weights)
    return [w / total for w in weights]


def _mean(entries: Mapping[str, float], keys: Sequence[str]) -> float:
    missing = [k for k in keys if k not in entries]
    if missing:
        raise AutoNADError(f"latency table has no entry '{missing[0]}' (incomplete, or for another search space)")
    return statistics.fmean(entries[k] for k in keys)


def _record_features(space: SearchSpace) -> list[tuple[str, str]]:
    out = [(f"stage{s}", ch) for s, st in enumerate(space.stages, start=1) for ch in st.op_choices]
    return out + [(f"dec.{e}", op) for e in EDGE_NAMES for op in space.decoder.edge_ops]


def _arch_features(arch: Arch) -> list[tuple[str, str]]:
    out = [(f"stage{s}", b.choice) for s, st in enumerate(arch.stages, start=1) for b in st.blocks]
    return out + [(f"dec.{e}", op) for e, op in zip(EDGE_NAMES, arch.decoder.edges)]
