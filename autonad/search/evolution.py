"""Latency-aware evolution search (paper 003, Algorithm 1) on the fixed-length genome, with DEAP.

Generation 0 is sampled with the latency prior (`gene_weights`). Every generation is evaluated
(each arch at most once: results are cached by `Arch.hash`), then its top-`parents` archs (by
score, or by NSGA-II rank and crowding on (fitness, latency) for the nsga2 objective) survive unchanged (elitism) and
breed the rest of the next population: a share `p_crossover` of the children by uniform crossover
of two parents, the others by mutation of one parent, which resamples each gene with probability
`p_mutation` (operator and decoder-edge genes from the prior). No arch appears twice in a
population (duplicates, also genomes that differ only in inactive block slots, are redrawn), and
candidates that break a constraint (latency, params, FLOPs) are redrawn before they are evaluated.
`best` is the highest score, or for nsga2 the fastest arch within the tolerance of the best
fitness (`pick_best`; the result says why it was chosen).

All randomness comes from one `random.Random(seed)`. The state (population, cache, logbook, RNG
states, generation) is checkpointed atomically after every generation and, during a long
evaluation, every `checkpoint_seconds`; ``run(resume=True)`` continues from it and ends with the
same result as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deap import base, creator, tools

from autonad import __version__
from autonad.errors import AutoNADError
from autonad.search.config import SearchConfig, fitness_se, fitness_value
from autonad.search.evaluate import Evaluator
from autonad.space import EDGE_NAMES, Arch, HeadsArch, SearchSpace
from autonad.tensorboard import ScalarLog, open_log
from autonad.train.checkpoint import load_checkpoint, restore_tuples, rng_state, save_atomic, set_rng_state
from autonad.ui import progress

STATE_FORMAT = "autonad-search/1"
MAX_SAMPLE_TRIES = 1000  # random samples without a single feasible arch before giving up
TRIES_PER_CHILD = 50  # breeding attempts per missing child before fresh prior samples fill the population
GeneWeights = Mapping[str, Sequence[float]]
LatencyFn = Callable[[Arch], float]
ComplexityFn = Callable[[Arch], tuple[int, int]]
_EDGE_GENES = frozenset(f"dec.{e}" for e in EDGE_NAMES)
LOG_COLUMNS = ("gen", "size", "evaluated", "rejected", "best_score", "mean_score", "best_fitness", "fastest_ms", "best")

# DEAP keeps its classes in the `creator` module: create them once per process.
if not hasattr(creator, "AutoNADScore"):
    creator.create("AutoNADScore", base.Fitness, weights=(1.0,))
    creator.create("AutoNADScoreIndividual", list, fitness=creator.AutoNADScore)
    creator.create("AutoNADPareto", base.Fitness, weights=(1.0, -1.0))  # fitness up, latency down
    creator.create("AutoNADParetoIndividual", list, fitness=creator.AutoNADPareto)


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Candidate:
    """One evaluated arch (a line of history.jsonl)."""

    generation: int  # the generation that evaluated it (0: the initial population)
    hash: str
    arch: Arch
    metrics: dict[str, Any]
    fitness: float
    latency_ms: float | None
    score: float
    params: int | None
    flops: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation, "hash": self.hash, "arch": self.arch.to_dict(), "metrics": self.metrics,
            "fitness": self.fitness, "latency_ms": self.latency_ms, "score": self.score, "params": self.params,
            "flops": self.flops,
        }  # fmt: skip

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Candidate:
        return Candidate(**{**data, "arch": Arch.from_dict(data["arch"])})


@dataclass
class SearchResult:
    best: Candidate  # `pick_best` over every evaluated candidate
    reason: str  # why `best` was chosen, in one sentence
    pareto: list[Candidate]  # non-dominated (fitness up, latency down) over every evaluated candidate, fastest first
    population: list[Candidate]  # the last generation, best score first
    history: list[Candidate]  # every evaluated candidate, in evaluation order
    logbook: tools.Logbook  # one record per generation


# ----------------------------------------------------------------------------- genetic operators
def is_op_gene(name: str) -> bool:
    """Operator genes: block ops and decoder edges (the genes a latency prior weights)."""
    return name.endswith(".op") or name in _EDGE_GENES


def mutate(
    genome: Sequence[int], space: SearchSpace, rng: random.Random, p: float, gene_weights: GeneWeights | None = None
) -> list[int]:
    """Resample each gene with probability `p`: operator genes from the prior when given, others uniformly."""
    child = list(genome)
    for i, gene in enumerate(space.genes):
        if rng.random() >= p:
            continue
        weights = (gene_weights or {}).get(gene.name) if is_op_gene(gene.name) else None
        n = len(gene.choices)
        child[i] = rng.choices(range(n), weights=weights)[0] if weights is not None else rng.randrange(n)
    return child


def crossover(a: Sequence[int], b: Sequence[int], rng: random.Random) -> list[int]:
    """Uniform crossover: each gene from either parent. Genes are choice indices of a fixed-length
    genome (inactive block slots keep theirs), so the child of two valid genomes is valid."""
    return [x if rng.random() < 0.5 else y for x, y in zip(a, b)]


def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both fitness (higher) and latency (lower), fastest first.
    Without latencies the front is the fittest candidate."""
    order = sorted(candidates, key=lambda c: (c.latency_ms or 0.0, -c.fitness))
    front: list[Candidate] = []
    for c in order:
        if not front or c.fitness > front[-1].fitness:
            front.append(c)
    return front


def pick_best(candidates: Sequence[Candidate], selection: str, tolerance: float) -> tuple[Candidate, str]:
    """The arch a search returns, and why. ``score``: the highest score (ties: the faster one).
    ``nsga2``: the fastest arch whose fitness is within `tolerance` points (fitness x 100) of the
    best fitness (ties: the fitter one), so a device-specific front yields a device-specific pick."""
    if selection != "nsga2":
        best = max(candidates, key=lambda c: (c.score, -(c.latency_ms or 0.0)))
        return best, f"highest score of {len(candidates)} evaluated archs"
    fittest = max(candidates, key=lambda c: (c.fitness, -(c.latency_ms or 0.0)))
    near = near_best(candidates, tolerance)
    best = min(near, key=lambda c: (c.latency_ms or 0.0, -c.fitness))
    points = f"{tolerance:g} point{'' if tolerance == 1 else 's'}"
    if best is fittest:
        return best, (f"the best fitness ({100 * best.fitness:.1f}) of {len(candidates)} evaluated archs, and no arch "
                      f"within {points} of it is faster")  # fmt: skip
    slower = f", {fittest.latency_ms / best.latency_ms:.2f}x slower" if best.latency_ms else ""
    return best, (
        f"the fastest of {len(near)} archs within {points} of the best fitness: {100 * best.fitness:.1f} "
        f"at {best.latency_ms:.3g} ms against {100 * fittest.fitness:.1f} at {fittest.latency_ms:.3g} ms "
        f"({fittest.hash[:8]}{slower})"
    )


def near_best(candidates: Sequence[Candidate], tolerance: float) -> list[Candidate]:
    """The candidates whose fitness is within `tolerance` points (fitness x 100) of the best."""
    floor = max(c.fitness for c in candidates) - tolerance / 100.0 - 1e-12
    return [c for c in candidates if c.fitness >= floor]


def noise_note(best: Candidate, candidates: Sequence[Candidate], selection: str, weights: Mapping[str, float]) -> str:
    """Whether the validation set tells the pick from its runner-up: the fitness's bootstrap SE and the
    gap to the runner-up (score: the next best score; nsga2: the fittest other arch), within or beyond
    2 SE. Empty where the results carry no SE (searches evaluated before it was recorded)."""
    se = fitness_se(weights, best.metrics)
    others = [c for c in candidates if c.hash != best.hash]
    if se is None or not others:
        return ""
    key = (lambda c: c.score) if selection != "nsga2" else (lambda c: c.fitness)
    runner = max(others, key=key)
    gap = key(best) - key(runner)
    told = "beyond" if abs(gap) > 2 * se else "within"
    images = best.metrics.get("num_samples")
    where = "behind" if gap >= 0 else "ahead"
    return (f"; validation noise: SE {100 * se:.1f} points over {images} images (bootstrap), the runner-up "
            f"{runner.hash[:8]} is {100 * abs(gap):.1f} points {where}: {told} 2 SE")  # fmt: skip


def share_score(fitness: float, latency_ms: float, reference_ms: float, share: float) -> float:
    """fitness * (1 - share) ** log_1.1(latency / reference): each 10% of latency costs `share` of the fitness."""
    ratio = max(latency_ms, 1e-9) / max(reference_ms, 1e-9)  # a table may price an arch at 0 ms
    return fitness * (1.0 - share) ** (math.log(ratio) / math.log(1.1))


# ----------------------------------------------------------------------------- the search
class EvolutionSearch:
    """Paper Algorithm 1 with elitism, de-duplication, constraints, caching and checkpoints.

    `evaluator` maps archs to metric dicts (`autonad.search.evaluate`); `latency_fn` predicts an
    arch's latency in ms (needed for a latency weight, a latency limit and NSGA-II);
    `complexity_fn` gives (params, FLOPs) for the params/FLOPs limits (results may also carry
    'params'/'flops', as `EvalContext.evaluate` does). `gene_weights` is the latency prior.
    `state_path` is the checkpoint (None: none); `identity` adds what the results depend on
    beyond the config and space (the evaluator's own identity is always added).
    """

    def __init__(
        self,
        space: SearchSpace,
        config: SearchConfig,
        evaluator: Evaluator,
        *,
        gene_weights: GeneWeights | None = None,
        latency_fn: LatencyFn | None = None,
        complexity_fn: ComplexityFn | None = None,
        heads: HeadsArch | None = None,
        state_path: str | Path | None = None,
        identity: Mapping[str, Any] | None = None,
        show_progress: bool = True,
        checkpoint_seconds: float = 60.0,
        tensorboard_dir: str | Path | None = None,
    ):
        self.space, self.config, self.evaluator = space, config, evaluator
        self.gene_weights = {k: [float(w) for w in v] for k, v in (gene_weights or {}).items()} or None
        self.latency_fn, self.complexity_fn = latency_fn, complexity_fn
        self.heads = heads if heads is not None else evaluator.heads
        self.state_path = Path(state_path) if state_path is not None else None
        self.show_progress, self.checkpoint_seconds = show_progress, checkpoint_seconds
        self.tensorboard_dir = tensorboard_dir  # per-generation scalars there (None: none)
        self.weights = config.fitness_weights
        self._check_inputs()
        # without a latency model, "auto" can only rank by accuracy
        self.selection = config.selection if latency_fn is not None or config.objective != "auto" else "score"
        self.reference_ms = float(latency_fn(space.smallest(heads=self.heads))) if (
            latency_fn is not None and config.latency_share > 0) else None  # fmt: skip
        self.identity = self._identity(identity)
        self.rng = random.Random(config.seed)
        self.toolbox = self._toolbox()
        # search state (checkpointed)
        self.generation = 0  # generations evaluated so far
        self.population: list[list[int]] = []  # genomes; not yet evaluated while `pending`
        self.pending = False
        self.rejected = 0  # infeasible candidates redrawn while making the current population
        self.cache: dict[str, Candidate] = {}  # arch hash -> evaluated candidate, in evaluation order
        self.measures: dict[str, dict[str, Any]] = {}  # arch hash -> latency_ms, params, flops (computed once)
        self.logbook = new_logbook()
        self._last_save = time.monotonic()
        self._tb: ScalarLog | None = None

    # -- set-up ---------------------------------------------------------------------
    def _check_inputs(self) -> None:
        c = self.config
        if self.latency_fn is None:
            needs = [
                label
                for label, on in (
                    (f"latency_weight {c.latency_weight:g}", c.latency_weight > 0),
                    (f"latency_share {c.latency_share:g}", c.latency_share > 0),
                    ("--max-latency-ms", c.max_latency_ms is not None),
                    ("--objective nsga2", c.objective == "nsga2"),
                )
                if on
            ]
            if needs:
                raise AutoNADError(f"{', '.join(needs)} needs a latency model, and none was given")
        if self.complexity_fn is None and (c.max_params is not None or c.max_flops is not None):
            raise AutoNADError("--max-params/--max-flops need a params/FLOPs counter, and none was given")
        if self.gene_weights:
            index = self.space.gene_index
            for name, weights in self.gene_weights.items():
                if name not in index or len(weights) != len(self.space.genes[index[name]].choices):
                    raise AutoNADError(f"latency prior: gene '{name}' does not fit search space '{self.space.name}'")
                if min(weights) < 0 or sum(weights) <= 0:
                    raise AutoNADError(f"latency prior: gene '{name}' needs non-negative weights with a positive sum")

    def _identity(self, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """What a checkpointed search must share with this one to be resumed (JSON-normalised)."""
        # the tolerance only picks from the history, so a resumed search may pick with another one; the
        # objective counts as the selection it resolves to ("auto" with a weight is "score")
        identity = known_identity(self.config, self.selection, self.space, self.gene_weights, extra)
        identity.update(heads=self.heads.to_dict(), evaluator=dict(self.evaluator.identity))
        return json.loads(json.dumps(identity))

    def _toolbox(self) -> base.Toolbox:
        c, tb = self.config, base.Toolbox()
        tb.register("sample", self.space.sample_genome, self.rng, self.gene_weights)
        tb.register("mate", crossover, rng=self.rng)
        tb.register("mutate", mutate, space=self.space, rng=self.rng, p=c.p_mutation, gene_weights=self.gene_weights)
        tb.register("select", tools.selNSGA2 if self.selection == "nsga2" else tools.selBest, k=c.parents)
        return tb

    # -- measures and constraints ----------------------------------------------------
    def decode(self, genome: Sequence[int]) -> Arch:
        return self.space.decode(genome, self.heads)

    def _measure(self, arch: Arch) -> dict[str, Any]:
        return self.measures.setdefault(arch.hash, {})

    def latency(self, arch: Arch) -> float | None:
        if self.latency_fn is None:
            return None
        m = self._measure(arch)
        if "latency_ms" not in m:
            m["latency_ms"] = float(self.latency_fn(arch))
        return m["latency_ms"]

    def complexity(self, arch: Arch) -> tuple[int, int]:
        m = self._measure(arch)
        if "params" not in m:
            assert self.complexity_fn is not None
            m["params"], m["flops"] = (int(v) for v in self.complexity_fn(arch))
        return m["params"], m["flops"]

    def feasible(self, arch: Arch) -> str | None:
        """None if `arch` meets every constraint, else the first one it breaks (cheapest checked first)."""
        c = self.config
        if c.max_latency_ms is not None and (ms := self.latency(arch)) > c.max_latency_ms:
            return f"latency {ms:.3g} ms > {c.max_latency_ms:g}"
        if c.max_params is None and c.max_flops is None:
            return None
        params, flops = self.complexity(arch)
        if c.max_params is not None and params > c.max_params:
            return f"params {params:,} > {c.max_params:g}"
        if c.max_flops is not None and flops > c.max_flops:
            return f"FLOPs {flops:,} > {c.max_flops:g}"
        return None

    # -- making populations --------------------------------------------------------
    def _admit(self, genome: list[int], population: list[list[int]], seen: set[str]) -> bool:
        """Add `genome` unless its arch is already in the population or breaks a constraint."""
        arch = self.decode(genome)
        if arch.hash in seen:
            return False
        if self.feasible(arch) is not None:
            self.rejected += 1
            return False
        population.append(genome)
        seen.add(arch.hash)
        return True

    def _sample_into(self, population: list[list[int]], seen: set[str]) -> None:
        """Fill `population` with prior-biased random samples (fewer if the feasible space runs out)."""
        n, tries, found = self.config.population, 0, 0
        limit = max(MAX_SAMPLE_TRIES, TRIES_PER_CHILD * (n - len(population)))
        while len(population) < n and tries < limit:
            tries += 1
            found += self._admit(self.toolbox.sample(), population, seen)
            if tries == MAX_SAMPLE_TRIES and not found and not population:
                raise AutoNADError(self._nothing_feasible())

    def _nothing_feasible(self) -> str:
        c = self.config
        limits = ", ".join(f"{flag} {value:g}" for flag, value in c.constraints.items())
        lows = []
        for key, label, fmt in (("latency_ms", "fastest", "{:.3g} ms"), ("params", "fewest params", "{:,}"),
                                ("flops", "fewest FLOPs", "{:,}")):  # fmt: skip
            seen = [m[key] for m in self.measures.values() if key in m]
            if seen:
                lows.append(f"{label} {fmt.format(min(seen))}")
        low = f"; {', '.join(lows)}" if lows else ""
        return (
            f"no architecture in search space '{self.space.name}' satisfies {limits} "
            f"({MAX_SAMPLE_TRIES} random samples tried{low})"
        )

    def _initial_population(self) -> list[list[int]]:
        population: list[list[int]] = []
        self.rejected = 0
        self._sample_into(population, set())
        return population

    def _next_population(self, parents: list[list[int]]) -> list[list[int]]:
        """Parents survive; children by crossover (share p_crossover) or mutation fill the rest."""
        c = self.config
        population = [list(p) for p in parents]
        seen = {self.decode(p).hash for p in population}
        self.rejected, tries = 0, 0
        while len(population) < c.population and tries < TRIES_PER_CHILD * c.population:
            tries += 1
            if len(parents) > 1 and self.rng.random() < c.p_crossover:
                a, b = self.rng.sample(parents, 2)
                child = self.toolbox.mate(a, b)
            else:
                child = self.toolbox.mutate(self.rng.choice(parents))
            self._admit(child, population, seen)
        self._sample_into(population, seen)  # only when breeding ran dry (a small or tightly constrained space)
        return population

    def _refine_population(self) -> list[list[int]]:
        """A refinement generation: cheaper one-gene neighbours of the archs within `tolerance` of the
        best fitness (`_cheaper_neighbours`), taken in turn from each arch, the fastest arch first, up
        to a population; unseen and feasible only."""
        near = sorted(near_best(list(self.cache.values()), self.config.tolerance), key=lambda c: c.latency_ms or 0.0)
        seen = set(self.cache)
        queues = [self._cheaper_neighbours(c, seen) for c in near]
        population: list[list[int]] = []
        while len(population) < self.config.population and any(queues):
            for queue in queues:
                if queue and len(population) < self.config.population:
                    child = queue.pop(0)
                    if (h := self.decode(child).hash) not in seen:
                        seen.add(h)
                        population.append(child)
        return population

    def _cheaper_neighbours(self, cand: Candidate, seen: set[str]) -> list[list[int]]:
        """Per gene, `cand`'s arch with that gene at its next cheaper choice on the target's table (the
        choice predicted slowest among those faster than the arch: the smallest step down), the
        biggest saving first."""
        genome = self.space.encode(cand.arch)
        steps = []
        for i, gene in enumerate(self.space.genes):
            step = None
            for j in range(len(gene.choices)):
                if j == genome[i]:
                    continue
                child = [*genome[:i], j, *genome[i + 1 :]]
                arch = self.decode(child)
                if arch.hash in seen or self.feasible(arch) is not None:
                    continue
                ms = self.latency(arch)
                if ms < (cand.latency_ms or 0.0) and (step is None or ms > step[0]):
                    step = (ms, child)
            if step is not None:
                steps.append(((cand.latency_ms or 0.0) - step[0], step[1]))
        return [child for _, child in sorted(steps, key=lambda s: -s[0])]

    def _select(self, genomes: list[list[int]]) -> list[list[int]]:
        nsga2 = self.selection == "nsga2"
        kind = creator.AutoNADParetoIndividual if nsga2 else creator.AutoNADScoreIndividual
        individuals = []
        for genome in genomes:
            cand = self.cache[self.decode(genome).hash]
            ind = kind(genome)
            ind.fitness.values = (cand.fitness, cand.latency_ms or 0.0) if nsga2 else (cand.score,)
            individuals.append(ind)
        return [list(ind) for ind in self.toolbox.select(individuals)]

    # -- evaluation ----------------------------------------------------------------
    def _candidate(self, arch: Arch, result: Mapping[str, Any]) -> Candidate:
        metrics = dict(result)
        m = self._measure(arch)
        params, flops = metrics.pop("params", None), metrics.pop("flops", None)
        params, flops = m.get("params", params), m.get("flops", flops)
        fitness = fitness_value(self.weights, metrics)
        latency = self.latency(arch)
        score = fitness - self.config.latency_weight * (latency or 0.0)
        if self.reference_ms is not None and latency is not None:
            score = share_score(fitness, latency, self.reference_ms, self.config.latency_share)
        return Candidate(self.generation, arch.hash, arch, metrics, fitness, latency, score, params, flops)

    def _evaluate(self, bar, task) -> None:
        archs = {}
        for genome in self.population:
            arch = self.decode(genome)
            if arch.hash not in self.cache:
                archs.setdefault(arch.hash, arch)
        todo = list(archs.values())
        g = self.generation
        what = "refining" if g >= self.config.generations else "evaluating"
        bar.reset(task, total=len(todo), description=f"generation {g + 1}/{self.total_generations}: {what}")
        for i, result in self.evaluator.imap(todo):
            self.cache[todo[i].hash] = self._candidate(todo[i], result)
            bar.advance(task)
            if self.state_path is not None and time.monotonic() - self._last_save >= self.checkpoint_seconds:
                self.save()  # results so far: a resumed run finds them in the cache

    def _log(self) -> None:
        cands = [self.cache[self.decode(g).hash] for g in self.population]
        latencies = [c.latency_ms for c in cands if c.latency_ms is not None]
        best, _ = pick_best(cands, self.selection, self.config.tolerance)
        self.logbook.record(
            gen=self.generation,
            size=len(cands),
            evaluated=sum(c.generation == self.generation for c in self.cache.values()),
            rejected=self.rejected,
            best_score=best.score,
            mean_score=sum(c.score for c in cands) / len(cands),
            best_fitness=max(c.fitness for c in cands),
            fastest_ms=min(latencies) if latencies else None,
            best=best.hash,
        )
        if self._tb is not None:  # step = generations evaluated, so a resumed search purges what it redoes
            record = {k: v for k, v in self.logbook[-1].items() if k not in ("gen", "best")}
            self._tb.scalars("search", {**record, "best_fitness_so_far": max(c.fitness for c in self.cache.values())},
                             self.generation + 1)  # fmt: skip
            self._tb.flush()

    # -- the loop ------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchResult:
        """Run (or with `resume`, continue) the search until `config.generations` are evaluated."""
        path = self.state_path
        if path is not None and path.exists():
            if not resume:
                raise AutoNADError(f"{path}: a search was already run here; pass --resume or choose another --out")
            self.load(path)
        self._tb = open_log(self.tensorboard_dir, True, self.generation) if self.tensorboard_dir else None
        try:
            self._run()
        finally:
            if self._tb is not None:
                self._tb.close()
        self._save_if_set()
        return self.result()

    @property
    def total_generations(self) -> int:
        """The evolution's generations and, ranking (fitness, latency), the refinement's."""
        refining = self.selection == "nsga2" and self.latency_fn is not None
        return self.config.generations + (self.config.refine if refining else 0)

    def _run(self) -> None:
        G = self.total_generations
        with progress(disable=not self.show_progress) as bar:
            gens = bar.add_task("evolution search", total=G, completed=min(self.generation, G))
            evals = bar.add_task("evaluating", total=0)
            if not self.population:
                self.population, self.pending = self._initial_population(), True
                self._save_if_set()
            while True:
                if self.pending:
                    self._evaluate(bar, evals)
                    self._log()
                    self.generation += 1
                    self.pending = False
                    bar.update(gens, completed=min(self.generation, G))
                if self.generation >= G:
                    break
                if self.generation < self.config.generations:
                    self.population = self._next_population(self._select(self.population))
                else:
                    self.population = self._refine_population()
                    if not self.population:  # no cheaper unseen neighbour is left near the best
                        break
                self.pending = True
                self._save_if_set()

    def result(self) -> SearchResult:
        history = list(self.cache.values())
        if not history:
            raise AutoNADError("the search has not evaluated any candidate yet")
        hashes = dict.fromkeys(self.decode(g).hash for g in self.population)
        population = sorted((self.cache[h] for h in hashes if h in self.cache), key=lambda c: -c.score)
        best, reason = pick_best(history, self.selection, self.config.tolerance)
        reason += noise_note(best, history, self.selection, self.weights)
        return SearchResult(best, reason, pareto_front(history), population, history, self.logbook)

    # -- checkpoint ------------------------------------------------------------------
    def _save_if_set(self) -> None:
        if self.state_path is not None:
            self.save()

    def save(self, path: str | Path | None = None) -> None:
        path = Path(path) if path is not None else self.state_path
        if path is None:
            raise ValueError("no checkpoint path")
        payload = {
            "format": STATE_FORMAT,
            "autonad_version": __version__,
            "identity": self.identity,
            "generation": self.generation,
            "pending": self.pending,
            "population": [list(g) for g in self.population],
            "rejected": self.rejected,
            "cache": [c.to_dict() for c in self.cache.values()],
            "measures": self.measures,
            "reference_ms": self.reference_ms,
            "logbook": [dict(r) for r in self.logbook],
            "rng": {"search": self.rng.getstate(), "global": rng_state()},
        }
        save_atomic(payload, path)
        self._last_save = time.monotonic()

    def load(self, path: str | Path) -> None:
        path = Path(path)
        state = load_checkpoint(path, STATE_FORMAT)
        try:
            check_identity(saved_identity(state["identity"]), self.identity, path)
            self.generation, self.pending = int(state["generation"]), bool(state["pending"])
            self.population = [list(g) for g in state["population"]]
            self.rejected = int(state["rejected"])
            self.cache = {c["hash"]: Candidate.from_dict(c) for c in state["cache"]}
            self.measures = {k: dict(v) for k, v in state["measures"].items()}
            if state.get("reference_ms") is not None:  # the scores so far were computed against it
                self.reference_ms = float(state["reference_ms"])
            self.logbook = new_logbook()
            for record in state["logbook"]:
                self.logbook.record(**record)
            self.rng.setstate(restore_tuples(state["rng"]["search"]))
            set_rng_state(state["rng"]["global"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise AutoNADError(
                f"{path}: incomplete or damaged search checkpoint, cannot resume from it ({e.__class__.__name__})"
            ) from None


def new_logbook() -> tools.Logbook:
    """One record per generation: population size, new evaluations, redrawn infeasible candidates, scores."""
    logbook = tools.Logbook()
    logbook.header = list(LOG_COLUMNS)
    return logbook


def saved_identity(identity: Any) -> Any:
    """A checkpoint's identity as this version writes it: searches saved before the default objective
    became "auto" recorded the objective itself ("score" or "nsga2", which is the selection) and
    had no latency share (0)."""
    config = identity.get("config") if isinstance(identity, dict) else None
    if not isinstance(config, dict) or "selection" in config:
        return identity
    known = {k: v for k, v in config.items() if k in SearchConfig.__dataclass_fields__}
    selection = SearchConfig.from_dict({"objective": "score", **known}).selection  # "auto" as it resolves now
    config = {"latency_share": 0.0, **{k: v for k, v in config.items() if k != "objective"}, "selection": selection}
    return {**identity, "config": config}


def known_identity(
    config: SearchConfig,
    selection: str,
    space: SearchSpace,
    gene_weights: GeneWeights | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The part of a search's identity known before its supernet is trained: the caller's `extra`
    (device and table) first, so a resume on another device is refused naming the device."""
    # the tolerance only picks from the history, so a resumed search may pick with another one; the
    # objective counts as the selection it resolves to ("auto" with a weight is "score")
    skip = ("generations", "refine", "workers", "tolerance", "objective")
    identity = {
        "extra": dict(extra or {}),
        "config": {**{k: v for k, v in config.to_dict().items() if k not in skip}, "selection": selection},
        "space": {"name": space.name, "genes": [[g.name, list(g.choices)] for g in space.genes]},
        "prior": {k: [float(w) for w in v] for k, v in gene_weights.items()} if gene_weights else None,
    }
    return json.loads(json.dumps(identity))


def check_resumable(path: Path, known: dict[str, Any]) -> None:
    """Refuse, before any work, a search checkpoint that `--resume` could not continue, on what is
    known before the supernet is trained (`known_identity`)."""
    state = load_checkpoint(path, STATE_FORMAT)
    saved = saved_identity(state.get("identity")) if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise AutoNADError(f"{path}: incomplete or damaged search checkpoint, cannot resume from it")
    check_identity({k: saved.get(k) for k in known}, known, path)


def check_identity(saved: Any, current: Any, path: Path) -> None:
    """Refuse a checkpoint of another search (device, config, space, prior, supernet) with one line;
    keys are compared in the order of `current`, which puts the device first."""
    if isinstance(saved, dict) and isinstance(current, dict):
        saved = {**{k: saved[k] for k in current if k in saved}, **saved}
    where = _first_difference(saved, current)
    if where is not None:
        key, theirs, ours = where
        raise AutoNADError(
            f"{path}: was written by a different search ({key}: {_short(theirs)} then, {_short(ours)} now); "
            "use the same settings or another --out"
        )


def _first_difference(a: Any, b: Any, key: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            found = _first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{key}[{i}]")
            if found is not None:
                return found
        return None
    return None if a == b else (key, a, b)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
