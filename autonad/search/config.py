"""Evolution-search settings (SPEC section 7) and the fitness spec.

Fitness is one validation metric or a positive weighted sum of them, written as a string:
``miou`` (default), ``mf1``, ``sample_miou``, ``seg_recall`` or e.g. ``0.5*miou+0.5*seg_recall``
(the paper-000 "sample-level fitness terms"). A metric that is undefined on the validation split
(None, e.g. seg_recall without defective samples) counts as 0.

Latency enters the selection in one of two ways (paper 003 Algorithm 1 leaves lambda open, and a
millisecond means something else on a GPU and on a CPU):

* ``objective="nsga2"`` (what ``"auto"`` picks when neither a latency weight nor a latency limit is
  set): parents by NSGA-II rank and crowding on (fitness, latency), and as `best` the fastest arch
  whose fitness is within `tolerance` points (fitness x 100) of the best fitness seen. `refine`
  generations follow the evolution: each evaluates cheaper one-gene neighbours (on the target's
  table) of the archs within `tolerance`, so the device's costs shape the pick, not only its prior.
* ``objective="score"`` (``"auto"`` with a weight or a limit): `best` has the highest score.
  Score = fitness - latency_weight * latency_ms (the paper's lambda, per ms), or with
  `latency_share` s, Score = fitness * (1 - s) ** log_1.1(latency_ms / reference_ms): an arch 10%
  slower loses the share s of its fitness, the same trade-off on every device (reference_ms, the
  smallest arch's latency, only scales the score). With neither, Score = fitness (accuracy only,
  under `max_latency_ms`; the latency prior still biases sampling and mutation).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from autonad.config import from_mapping, to_mapping
from autonad.errors import AutoNADError

FITNESS_METRICS = ("miou", "mf1", "sample_miou", "seg_recall")
Objective = Literal["auto", "score", "nsga2"]
_NUMBER = re.compile(r"^[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?$")


@dataclass(frozen=True)
class SearchConfig:
    population: int = 100  # paper V-B
    generations: int = 50  # generation 0 is the initial population
    parents: int = 10  # top-k survivors and parents of each generation
    p_mutation: float = 0.2  # per-gene resampling probability of a mutation child
    p_crossover: float = 0.4  # share of children made by crossover (the others by mutation)
    latency_weight: float = 0.0  # lambda in score = fitness - lambda * latency_ms (see the module docstring)
    latency_share: float = 0.0  # share of the fitness an arch 10% slower loses (device-independent weight)
    fitness: str = "miou"
    objective: Objective = "auto"
    tolerance: float = 1.0  # nsga2: best = fastest arch within this many fitness points (x100) of the best
    refine: int = 1  # nsga2: generations of cheaper neighbours of the archs within tolerance, after the evolution
    max_latency_ms: float | None = None
    max_params: float | None = None
    max_flops: float | None = None
    val_images: int | None = None  # validation images per evaluation (None: the whole split)
    workers: int | None = None  # Ray actors (None: the available cores, 0: evaluate in this process)
    seed: int = 0

    def __post_init__(self):
        if self.population < 2:
            raise AutoNADError(f"population: must be at least 2, got {self.population}")
        if self.generations < 1:
            raise AutoNADError(f"generations: must be at least 1, got {self.generations}")
        if not 1 <= self.parents < self.population:
            raise AutoNADError(f"parents: must be from 1 to population - 1 ({self.population - 1}), got {self.parents}")
        for name in ("p_mutation", "p_crossover"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise AutoNADError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if not math.isfinite(self.latency_weight) or self.latency_weight < 0:
            raise AutoNADError(f"latency_weight: must be 0 or positive, got {self.latency_weight}")
        if not 0.0 <= self.latency_share < 1.0:
            raise AutoNADError(f"latency_share: must be in [0, 1), got {self.latency_share}")
        if self.latency_weight > 0 and self.latency_share > 0:
            raise AutoNADError(
                "latency weight: give it per ms (latency_weight) or as a share (latency_share), not both"
            )
        if self.objective not in ("auto", "score", "nsga2"):
            raise AutoNADError(f"objective: must be auto, score or nsga2, got {self.objective!r}")
        if self.objective == "nsga2" and self.weighted:
            raise AutoNADError(
                "objective nsga2 ranks by (fitness, latency): a latency weight would be ignored; drop one"
            )
        if self.refine < 0:
            raise AutoNADError(f"refine: must be 0 (off) or more generations, got {self.refine}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise AutoNADError(f"tolerance: must be 0 or more fitness points, got {self.tolerance}")
        for name in ("max_latency_ms", "max_params", "max_flops"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise AutoNADError(f"{name}: must be positive, got {value}")
        if self.val_images is not None and self.val_images < 1:
            raise AutoNADError(f"val_images: must be at least 1, got {self.val_images}")
        if self.workers is not None and self.workers < 0:
            raise AutoNADError(f"workers: must be 0 or more, got {self.workers}")
        parse_fitness(self.fitness)

    @property
    def weighted(self) -> bool:
        """A latency weight is set (per ms or as a share)."""
        return self.latency_weight > 0 or self.latency_share > 0

    @property
    def selection(self) -> Literal["score", "nsga2"]:
        """The objective in force: ``auto`` is nsga2 unless a latency weight or a latency limit is set."""
        if self.objective != "auto":
            return self.objective
        return "score" if self.weighted or self.max_latency_ms is not None else "nsga2"

    @property
    def fitness_weights(self) -> dict[str, float]:
        return parse_fitness(self.fitness)

    @property
    def constraints(self) -> dict[str, float]:
        """The constraints that are set, by command-line flag."""
        flags = {"max_latency_ms": "--max-latency-ms", "max_params": "--max-params", "max_flops": "--max-flops"}
        return {flag: getattr(self, name) for name, flag in flags.items() if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    @staticmethod
    def from_dict(data: Any, where: str = "search config") -> SearchConfig:
        return from_mapping(SearchConfig, data, where)


def parse_fitness(spec: str) -> dict[str, float]:
    """``"0.5*miou+0.5*seg_recall"`` -> ``{"miou": 0.5, "seg_recall": 0.5}`` (a repeated metric adds up)."""
    hint = f"use {', '.join(FITNESS_METRICS)} or a weighted sum like 0.5*miou+0.5*seg_recall"
    if not isinstance(spec, str) or not spec.strip():
        raise AutoNADError(f"fitness: empty ({hint})")
    weights: dict[str, float] = {}
    for term in spec.replace(" ", "").split("+"):
        metric, weight = _term(term, spec, hint)
        weights[metric] = weights.get(metric, 0.0) + weight
    return weights


def _term(term: str, spec: str, hint: str) -> tuple[str, float]:
    parts = term.split("*")
    names = [p for p in parts if not _NUMBER.match(p)]
    numbers = [float(p) for p in parts if _NUMBER.match(p)]
    if not all(parts) or len(names) != 1 or len(numbers) > 1:
        raise AutoNADError(f"fitness: cannot read term '{term}' in '{spec}' ({hint})")
    if names[0] not in FITNESS_METRICS:
        raise AutoNADError(f"fitness: unknown term '{names[0]}' in '{spec}' ({hint})")
    weight = numbers[0] if numbers else 1.0
    if not (math.isfinite(weight) and weight > 0):
        raise AutoNADError(f"fitness: the weight of '{names[0]}' must be positive, got {weight:g}")
    return names[0], weight


def fitness_se(weights: Mapping[str, float], metrics: Mapping[str, Any]) -> float | None:
    """The bootstrap standard error of the fitness over the validation images (`metrics["se"]`, from
    the evaluator): exact for one metric, an upper bound (errors added) for a weighted sum; None for
    results without it."""
    se = metrics.get("se") or {}
    if any(se.get(name) is None for name in weights):
        return None
    return float(sum(abs(w) * se[name] for name, w in weights.items()))


def fitness_value(weights: Mapping[str, float], metrics: Mapping[str, Any]) -> float:
    """Weighted sum of the metrics; an undefined (None or missing) metric counts as 0."""
    return float(sum(w * float(metrics.get(name) or 0.0) for name, w in weights.items()))
