import math
import random
from collections import Counter

import pytest

from autonad.errors import AutoNADError
from autonad.search import (
    STATE_FORMAT,
    Candidate,
    EvolutionSearch,
    FunctionEvaluator,
    crossover,
    is_op_gene,
    mutate,
    pareto_front,
    pick_best,
)
from autonad.search.config import fitness_se
from autonad.search.evolution import noise_note
from autonad.space import EDGE_NAMES
from autonad.train.checkpoint import load_checkpoint

from .conftest import CountingEvaluator, fake_latency, fake_metrics, small_config


def make_search(space, evaluator=None, **kwargs) -> EvolutionSearch:
    config = kwargs.pop("config", None) or small_config(**kwargs.pop("changes", {}))
    kwargs.setdefault("show_progress", False)
    return EvolutionSearch(space, config, evaluator or CountingEvaluator(), **kwargs)


class RecordingSearch(EvolutionSearch):
    """Keeps every evaluated population (as arch hashes, in population order)."""

    def _log(self) -> None:
        self.populations = getattr(self, "populations", [])
        self.populations.append([self.decode(g).hash for g in self.population])
        super()._log()


def op_prior(space, favourite: float = 0.85) -> dict[str, list[float]]:
    """Every operator gene: choice 0 with weight `favourite`, the rest share what is left."""
    prior = {}
    for g in space.genes:
        if is_op_gene(g.name):
            rest = (1 - favourite) / (len(g.choices) - 1)
            prior[g.name] = [favourite] + [rest] * (len(g.choices) - 1)
    return prior


# ----------------------------------------------------------------------------- operators
def test_op_genes_are_block_ops_and_decoder_edges(autonad_space):
    ops = [g.name for g in autonad_space.genes if is_op_gene(g.name)]
    assert ops == [f"s{s}.b{b}.op" for s in range(1, 5) for b in range(1, 5)] + [f"dec.{e}" for e in EDGE_NAMES]


@pytest.mark.parametrize("space_name", ["tiny_space", "autonad_space"])
def test_crossover_and_mutation_always_give_valid_genomes(space_name, request):
    space = request.getfixturevalue(space_name)
    rng = random.Random(0)
    prior = op_prior(space)
    genomes = [space.sample_genome(rng) for _ in range(20)]
    for _ in range(300):
        a, b = rng.sample(genomes, 2)
        for child in (crossover(a, b, rng), mutate(a, space, rng, 0.3), mutate(b, space, rng, 0.5, prior)):
            assert len(child) == len(space.genes)
            assert all(0 <= v < len(g.choices) for v, g in zip(child, space.genes))
            space.validate(space.decode(child))
            genomes[rng.randrange(len(genomes))] = child  # let variation compound, depths included


def test_crossover_takes_every_gene_from_a_parent():
    rng = random.Random(1)
    a, b = [0] * 40, [1] * 40
    child = crossover(a, b, rng)
    assert set(child) == {0, 1} and 8 < sum(child) < 32
    assert crossover(a, a, rng) == a


def test_mutation_rate_is_per_gene(tiny_space):
    rng = random.Random(2)
    genome = tiny_space.sample_genome(rng)
    assert mutate(genome, tiny_space, rng, 0.0) == genome
    changed = []
    for _ in range(400):
        child = mutate(genome, tiny_space, rng, 0.2)
        changed.append(sum(x != y for x, y in zip(child, genome)))
    # a resampled gene keeps its value with probability 1/choices: expect 0.2 * sum(1 - 1/n) per genome
    expected = 0.2 * sum(1 - 1 / len(g.choices) for g in tiny_space.genes)
    assert sum(changed) / len(changed) == pytest.approx(expected, rel=0.15)


def test_the_prior_biases_mutation_of_op_genes_only(tiny_space):
    rng = random.Random(3)
    prior = op_prior(tiny_space, favourite=0.85)
    genome = tiny_space.sample_genome(rng)
    ops, others = Counter(), Counter()
    for _ in range(600):
        child = mutate(genome, tiny_space, rng, 1.0, prior)  # every gene resampled
        for g, v in zip(tiny_space.genes, child):
            if is_op_gene(g.name):
                ops[v == 0] += 1
            elif g.name == "dec.pools":  # 5 choices, not an op gene: uniform
                others[v] += 1
    assert ops[True] / sum(ops.values()) == pytest.approx(0.85, abs=0.03)
    assert all(n / 600 == pytest.approx(0.2, abs=0.05) for n in others.values())
    # a prior entry for a non-op gene does not bias mutation (only initial sampling)
    pools = tiny_space.gene_index["dec.pools"]
    prior = {"dec.pools": [1.0, 0.0, 0.0, 0.0, 0.0]}
    assert len(Counter(mutate(genome, tiny_space, rng, 1.0, prior)[pools] for _ in range(300))) == 5


def test_the_prior_biases_the_initial_population(tiny_space):
    def op_share(search):
        pop = search._initial_population()
        values = [v for genome in pop for g, v in zip(tiny_space.genes, genome) if is_op_gene(g.name)]
        return sum(v == 0 for v in values) / len(values)

    biased = make_search(tiny_space, gene_weights=op_prior(tiny_space, 0.85), changes={"population": 60})
    plain = make_search(tiny_space, changes={"population": 60})
    assert op_share(biased) == pytest.approx(0.85, abs=0.04)
    # without a prior, op genes are uniform: edges have 5 choices and block ops 4
    assert op_share(plain) == pytest.approx((16 * 0.25 + 10 * 0.2) / 26, abs=0.04)


def test_a_prior_that_does_not_fit_the_space_is_refused(tiny_space):
    with pytest.raises(AutoNADError, match="gene 's1.b1.op' does not fit search space 'tiny'"):
        make_search(tiny_space, gene_weights={"s1.b1.op": [1.0, 2.0]})
    with pytest.raises(AutoNADError, match="gene 'nope' does not fit"):
        make_search(tiny_space, gene_weights={"nope": [1.0]})


# ----------------------------------------------------------------------------- the loop
def test_elitism_keeps_the_parents_and_the_best_score_never_drops(tiny_space):
    search = RecordingSearch(tiny_space, small_config(generations=6), CountingEvaluator(), show_progress=False)
    result = search.run()
    best = [r["best_score"] for r in result.logbook]
    assert best == sorted(best) and best[-1] > best[0]
    scores = {c.hash: c.score for c in result.history}
    for before, after in zip(search.populations, search.populations[1:]):
        parents = sorted(before, key=lambda h: -scores[h])[: search.config.parents]
        assert after[: len(parents)] == parents  # top-k by score survive, first
    assert result.best.hash == max(result.history, key=lambda c: c.score).hash == result.population[0].hash


def test_populations_hold_no_arch_twice_and_no_arch_is_evaluated_twice(tiny_space):
    evaluator = CountingEvaluator()
    search = RecordingSearch(tiny_space, small_config(generations=6), evaluator, show_progress=False)
    result = search.run()
    for population in search.populations:
        assert len(population) == search.config.population == len(set(population))
    hashes = [a.hash for a in evaluator.calls]
    assert len(hashes) == len(set(hashes)) == len(result.history)
    assert evaluator.imaps == search.config.generations
    # later generations reuse the cached parents instead of evaluating them again
    assert [r["evaluated"] for r in result.logbook][1:] == [
        len(set(p) - set().union(*search.populations[:i])) for i, p in enumerate(search.populations) if i
    ]


def test_dedup_is_by_arch_not_genome(tiny_space):
    search = make_search(tiny_space)
    genome = tiny_space.sample_genome(random.Random(4))
    depth = tiny_space.gene_index["s1.depth"]
    genome[depth] = 0  # depth 1: slot b2 is inactive
    twin = list(genome)
    slot = tiny_space.gene_index["s1.b2.op"]
    twin[slot] = (genome[slot] + 1) % 4
    assert twin != genome and search.decode(twin) == search.decode(genome)
    population, seen = [], set()
    assert search._admit(genome, population, seen) and not search._admit(twin, population, seen)
    assert population == [genome]


def test_breeding_falls_back_to_fresh_samples_when_children_repeat_parents(tiny_space):
    search = make_search(tiny_space, changes={"p_mutation": 0.0, "p_crossover": 0.0})  # children = parent clones
    parents = search._initial_population()[:4]
    population = search._next_population(parents)
    hashes = [search.decode(g).hash for g in population]
    assert population[:4] == parents and len(hashes) == len(set(hashes)) == search.config.population


def test_same_seed_same_search_other_seed_other_search(tiny_space):
    a, b = make_search(tiny_space).run(), make_search(tiny_space).run()
    c = make_search(tiny_space, changes={"seed": 6}).run()
    assert [x.to_dict() for x in a.history] == [x.to_dict() for x in b.history]
    assert [x.hash for x in a.history] != [x.hash for x in c.history]


def test_score_subtracts_the_weighted_latency(tiny_space):
    weight = 0.02
    result = make_search(tiny_space, latency_fn=fake_latency, changes={"latency_weight": weight}).run()
    for c in result.history:
        assert c.fitness == pytest.approx(fake_metrics(c.arch)["miou"])
        assert c.latency_ms == pytest.approx(fake_latency(c.arch))
        assert c.score == pytest.approx(c.fitness - weight * c.latency_ms)
    plain = make_search(tiny_space).run()
    assert all(c.latency_ms is None and c.score == c.fitness for c in plain.history)


def test_weighted_fitness_spec_with_an_undefined_metric(tiny_space):
    result = make_search(tiny_space, changes={"fitness": "0.5*miou+0.5*sample_miou"}).run()
    assert all(c.fitness == pytest.approx(0.5 * c.metrics["miou"]) for c in result.history)


# ----------------------------------------------------------------------------- constraints
def test_infeasible_candidates_are_never_evaluated(tiny_space):
    evaluator = CountingEvaluator()
    limit = 8.0
    search = make_search(tiny_space, evaluator, latency_fn=fake_latency, changes={"max_latency_ms": limit})
    result = search.run()
    assert evaluator.calls and all(fake_latency(a) <= limit for a in evaluator.calls)
    assert sum(r["rejected"] for r in result.logbook) > 0  # the limit did bite
    assert all(c.latency_ms <= limit for c in result.history)


def test_params_and_flops_limits_use_the_complexity_counter(tiny_space):
    calls = []

    def complexity(arch):
        calls.append(arch.hash)
        return sum(st.width * st.depth for st in arch.stages) * 1000, 10**6

    evaluator = CountingEvaluator()
    search = make_search(tiny_space, evaluator, complexity_fn=complexity, changes={"max_params": 250_000.0})
    result = search.run()
    assert all(c.params <= 250_000 and c.flops == 10**6 for c in result.history)
    assert len(calls) == len(set(calls))  # counted once per arch (cached by hash)
    with pytest.raises(AutoNADError, match="--max-params/--max-flops need a params/FLOPs counter"):
        make_search(tiny_space, changes={"max_flops": 1e6})


def test_an_impossible_constraint_fails_with_one_line_before_any_evaluation(tiny_space):
    evaluator = CountingEvaluator()
    search = make_search(tiny_space, evaluator, latency_fn=fake_latency, changes={"max_latency_ms": 0.1})
    with pytest.raises(AutoNADError) as err:
        search.run()
    message = str(err.value)
    assert message.startswith("no architecture in search space 'tiny' satisfies --max-latency-ms 0.1")
    assert "1000 random samples tried" in message and "fastest" in message and "\n" not in message
    assert evaluator.calls == []


def test_latency_settings_need_a_latency_model(tiny_space):
    with pytest.raises(AutoNADError, match="--max-latency-ms needs a latency model"):
        make_search(tiny_space, changes={"max_latency_ms": 5.0})
    with pytest.raises(AutoNADError, match="--objective nsga2 needs a latency model"):
        make_search(tiny_space, changes={"objective": "nsga2"})


# ----------------------------------------------------------------------------- NSGA-II
def test_nsga2_returns_the_pareto_front_of_fitness_and_latency(tiny_space):
    result = make_search(tiny_space, latency_fn=fake_latency, changes={"objective": "nsga2", "generations": 5}).run()
    front = result.pareto
    assert len(front) >= 2
    assert [c.latency_ms for c in front] == sorted(c.latency_ms for c in front)
    assert [c.fitness for c in front] == sorted(c.fitness for c in front)
    for c in result.history:  # nothing evaluated dominates a front member
        for f in front:
            assert not (c.fitness >= f.fitness and c.latency_ms <= f.latency_ms and c.hash != f.hash
                        and (c.fitness > f.fitness or c.latency_ms < f.latency_ms))  # fmt: skip
    fittest = max(c.fitness for c in result.history)
    near = [c for c in result.history if c.fitness >= fittest - 0.01]
    assert result.best.hash == min(near, key=lambda c: c.latency_ms).hash
    assert result.best.hash in {c.hash for c in front}


def test_auto_objective_is_the_front_with_a_latency_model_and_accuracy_without(tiny_space):
    timed = make_search(tiny_space, latency_fn=fake_latency)
    assert timed.selection == "nsga2"
    assert make_search(tiny_space).selection == "score"
    assert make_search(tiny_space, latency_fn=fake_latency, changes={"latency_weight": 0.01}).selection == "score"


def candidate(name: str, fitness: float, ms: float) -> Candidate:
    return Candidate(0, name, None, {}, fitness, ms, fitness, None, None)


def test_best_is_the_fastest_within_the_tolerance_of_the_best_fitness():
    cands = [candidate("a", 0.800, 50.0), candidate("b", 0.795, 30.0), candidate("c", 0.785, 10.0),
             candidate("d", 0.790, 30.0)]  # fmt: skip
    best, why = pick_best(cands, "nsga2", tolerance=1.0)
    assert best.hash == "b"  # d is as fast, b is fitter; c gives up 1.5 points
    assert "fastest of 3 archs within 1 point" in why and "1.67x slower" in why
    assert pick_best(cands, "nsga2", tolerance=2.0)[0].hash == "c"
    best, why = pick_best(cands, "nsga2", tolerance=0.0)
    assert best.hash == "a" and "no arch within 0 points of it is faster" in why
    assert pick_best(cands, "score", tolerance=1.0)[0].hash == "a"


def test_the_summary_says_whether_validation_tells_the_pick_from_its_runner_up():
    def with_se(name, fitness, ms, se):
        return Candidate(0, name, None, {"num_samples": 12, "se": {"miou": se}}, fitness, ms, fitness, None, None)

    weights = {"miou": 1.0}
    cands = [with_se("a", 0.800, 50.0, 0.02), with_se("b", 0.795, 30.0, 0.02), with_se("c", 0.700, 10.0, 0.02)]
    best, _ = pick_best(cands, "nsga2", tolerance=1.0)
    note = noise_note(best, cands, "nsga2", weights)
    assert note == ("; validation noise: SE 2.0 points over 12 images (bootstrap), the runner-up a is 0.5 points "
                    "ahead: within 2 SE")  # fmt: skip
    clear = [with_se("a", 0.80, 50.0, 0.01), with_se("c", 0.70, 10.0, 0.01)]
    assert noise_note(clear[0], clear, "score", weights).endswith("c is 10.0 points behind: beyond 2 SE")
    assert noise_note(candidate("x", 0.5, 1.0), [candidate("x", 0.5, 1.0), candidate("y", 0.4, 1.0)], "score",
                      weights) == ""  # fmt: skip
    assert fitness_se({"miou": 0.5, "seg_recall": 0.5}, {"se": {"miou": 0.02, "seg_recall": 0.04}}) == 0.03


def test_a_latency_share_costs_the_same_fraction_of_fitness_per_10_percent(tiny_space):
    share = 0.05
    search = make_search(tiny_space, latency_fn=fake_latency, changes={"latency_share": share})
    result = search.run()
    ref = fake_latency(tiny_space.smallest())
    assert search.reference_ms == pytest.approx(ref)
    for c in result.history:
        steps = math.log(c.latency_ms / ref) / math.log(1.1)
        assert c.score == pytest.approx(c.fitness * (1 - share) ** steps)
    # the ranking does not depend on the unit or the device's overall speed: scaling every latency keeps it
    scaled = make_search(tiny_space, latency_fn=lambda arch: 7.0 * fake_latency(arch),
                         changes={"latency_share": share}).run()  # fmt: skip
    assert [c.hash for c in sorted(scaled.history, key=lambda c: -c.score)] == [
        c.hash for c in sorted(result.history, key=lambda c: -c.score)
    ]


def test_pareto_front_without_latency_is_the_fittest(tiny_space):
    result = make_search(tiny_space).run()
    assert pareto_front(result.history) == [max(result.history, key=lambda c: c.fitness)]


# ----------------------------------------------------------------------------- checkpoint and resume
@pytest.mark.parametrize("fail_on", [1, 3])
def test_resume_after_an_interruption_gives_the_uninterrupted_result(tiny_space, tmp_path, fail_on):
    config = small_config(generations=5)
    prior = op_prior(tiny_space, 0.6)
    common = {"gene_weights": prior, "latency_fn": fake_latency, "show_progress": False}
    reference = EvolutionSearch(tiny_space, config, CountingEvaluator(), **common).run()

    state = tmp_path / "search_state.pt"
    killed = CountingEvaluator(fail_on=fail_on, fail_after=2)
    search = EvolutionSearch(tiny_space, config, killed, state_path=state, checkpoint_seconds=0.0, **common)
    with pytest.raises(KeyboardInterrupt):
        search.run()
    saved = load_checkpoint(state, STATE_FORMAT)
    assert saved["generation"] == fail_on - 1 and saved["pending"]
    assert len(saved["cache"]) == len(killed.calls)  # results before the kill were flushed

    again = CountingEvaluator()
    resumed = EvolutionSearch(tiny_space, config, again, state_path=state, **common).run(resume=True)
    assert resumed.best.to_dict() == reference.best.to_dict()
    assert [c.to_dict() for c in resumed.history] == [c.to_dict() for c in reference.history]
    assert list(resumed.logbook) == list(reference.logbook)
    assert not {a.hash for a in again.calls} & {a.hash for a in killed.calls}  # nothing evaluated twice


def test_resume_continues_with_more_generations(tiny_space, tmp_path):
    state = tmp_path / "search_state.pt"
    reference = make_search(tiny_space, changes={"generations": 5}).run()
    make_search(tiny_space, state_path=state, changes={"generations": 3}).run()
    longer = make_search(tiny_space, state_path=state, changes={"generations": 5}).run(resume=True)
    assert [c.to_dict() for c in longer.history] == [c.to_dict() for c in reference.history]
    done = make_search(tiny_space, CountingEvaluator(), state_path=state, changes={"generations": 5})
    assert done.run(resume=True).best == reference.best and done.evaluator.calls == []


def test_a_checkpoint_of_another_search_is_refused(tiny_space, autonad_space, tmp_path):
    state = tmp_path / "search_state.pt"
    make_search(tiny_space, state_path=state, changes={"generations": 1}).run()
    with pytest.raises(AutoNADError, match="search_state.pt: a search was already run here; pass --resume"):
        make_search(tiny_space, state_path=state).run()
    with pytest.raises(AutoNADError, match=r"different search \(config.fitness: \"miou\" then, \"mf1\" now\)"):
        make_search(tiny_space, state_path=state, changes={"fitness": "mf1"}).run(resume=True)
    with pytest.raises(AutoNADError, match=r"different search \(space.name"):
        make_search(autonad_space, state_path=state).run(resume=True)
    with pytest.raises(AutoNADError, match=r"different search \(prior"):
        make_search(tiny_space, state_path=state, gene_weights=op_prior(tiny_space)).run(resume=True)
    other = FunctionEvaluator(fake_metrics)
    other.identity = {"supernet": "tiny", "supernet_step": 9}
    with pytest.raises(AutoNADError, match=r"different search \(evaluator.supernet"):
        make_search(tiny_space, other, state_path=state).run(resume=True)
    # workers and generations may change between runs
    make_search(tiny_space, state_path=state, changes={"workers": 3, "generations": 2}).run(resume=True)


def test_a_damaged_checkpoint_gives_one_line(tiny_space, tmp_path):
    state = tmp_path / "search_state.pt"
    state.write_bytes(b"not a checkpoint")
    with pytest.raises(AutoNADError, match="not a readable checkpoint"):
        make_search(tiny_space, state_path=state).run(resume=True)


def test_a_checkpoint_from_before_the_auto_objective_resumes(tiny_space, tmp_path):
    """Searches saved when the default objective was "score" (no latency share) resume under "auto"
    when it resolves to the same selection; one that resolves to another is refused."""
    state = tmp_path / "search_state.pt"
    changes = {"latency_weight": 0.01, "generations": 2}
    make_search(tiny_space, latency_fn=fake_latency, changes=changes, state_path=state).run()
    saved = load_checkpoint(state, STATE_FORMAT)
    config = {k: v for k, v in saved["identity"]["config"].items() if k not in ("selection", "latency_share")}
    saved["identity"]["config"] = {**config, "objective": "score"}  # as the previous version wrote it
    from autonad.train.checkpoint import save_atomic

    save_atomic(saved, state)
    again = make_search(tiny_space, latency_fn=fake_latency, changes={**changes, "generations": 3}, state_path=state)
    assert len(again.run(resume=True).logbook) == 3
    front = make_search(tiny_space, latency_fn=fake_latency, changes={"generations": 3}, state_path=state)
    with pytest.raises(AutoNADError, match="different search"):
        front.run(resume=True)


def test_refinement_evaluates_cheaper_one_gene_neighbours_of_the_archs_near_the_best(tiny_space):
    """After the evolution (unchanged), a refinement generation tries, for the archs within the
    tolerance of the best fitness, single genes moved to a cheaper choice on the target's table."""

    def run(refine):
        search = RecordingSearch(tiny_space, small_config(objective="nsga2", refine=refine), CountingEvaluator(),
                                 latency_fn=fake_latency, show_progress=False)  # fmt: skip
        return search, search.run()

    plain, before = run(0)
    refined, after = run(1)
    assert refined.total_generations == plain.total_generations + 1 == 5
    assert refined.populations[:-1] == plain.populations and len(refined.populations[-1]) > 0
    fittest = max(c.fitness for c in before.history)
    near = [c for c in before.history if c.fitness >= fittest - 0.01]
    neighbours = {}  # hash -> the latency of the near arch it is a one-gene neighbour of (the slowest such)
    for c in near:
        genome = tiny_space.encode(c.arch)
        for i, gene in enumerate(tiny_space.genes):
            for j in range(len(gene.choices)):
                arch = tiny_space.decode([*genome[:i], j, *genome[i + 1 :]], c.arch.heads)
                neighbours[arch.hash] = max(neighbours.get(arch.hash, 0.0), c.latency_ms)
    seen = {c.hash for c in before.history}
    by_hash = {c.hash: c for c in after.history}
    for h in refined.populations[-1]:
        assert h not in seen and h in neighbours and by_hash[h].latency_ms < neighbours[h]
    assert after.best.hash == pick_best(after.history, "nsga2", 1.0)[0].hash
    weighted = make_search(tiny_space, latency_fn=fake_latency, changes={"latency_weight": 0.01, "refine": 1})
    assert weighted.total_generations == 4  # the highest score needs no cheaper neighbours
    with pytest.raises(AutoNADError, match="refine: must be 0"):
        small_config(refine=-1)
