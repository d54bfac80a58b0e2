import pytest

from autonad.errors import AutoNADError
from autonad.search import FITNESS_METRICS, SearchConfig, fitness_value, parse_fitness


def test_defaults_are_the_papers():
    c = SearchConfig()
    assert (c.population, c.generations, c.parents, c.p_mutation, c.p_crossover) == (100, 50, 10, 0.2, 0.4)
    assert c.fitness_weights == {"miou": 1.0}
    assert c.objective == "auto" and c.latency_weight == 0.0 and c.latency_share == 0.0 and c.constraints == {}


@pytest.mark.parametrize(
    ("changes", "selection"),
    [
        ({}, "nsga2"),  # latency-aware by default: the (fitness, latency) front
        ({"latency_weight": 0.01}, "score"),
        ({"latency_share": 0.02}, "score"),
        ({"max_latency_ms": 40.0}, "score"),  # accuracy under the limit, as in the paper
        ({"objective": "score"}, "score"),
        ({"objective": "nsga2", "max_latency_ms": 40.0}, "nsga2"),
    ],
)
def test_auto_objective_is_nsga2_unless_a_weight_or_limit_is_set(changes, selection):
    assert SearchConfig(**changes).selection == selection


@pytest.mark.parametrize(
    ("spec", "weights"),
    [
        ("miou", {"miou": 1.0}),
        ("seg_recall", {"seg_recall": 1.0}),
        ("0.5*miou+0.5*seg_recall", {"miou": 0.5, "seg_recall": 0.5}),
        (" 0.3 * mf1 + sample_miou*0.7 ", {"mf1": 0.3, "sample_miou": 0.7}),
        ("miou+miou+1e-1*mf1", {"miou": 2.0, "mf1": 0.1}),
    ],
)
def test_fitness_specs_parse_into_weights(spec, weights):
    assert parse_fitness(spec) == pytest.approx(weights)
    assert SearchConfig(fitness=spec).fitness_weights == pytest.approx(weights)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("miu", "unknown term 'miu'"),
        ("0.5*miou+0.5*recall", "unknown term 'recall'"),
        ("0.5*", "cannot read term '0.5\\*'"),
        ("miou+", "cannot read term ''"),
        ("miou*mf1", "cannot read term 'miou\\*mf1'"),
        ("0.5*0.5*miou", "cannot read term"),
        ("0*miou", "weight of 'miou' must be positive"),
        ("", "fitness: empty"),
    ],
)
def test_bad_fitness_specs_give_one_line(spec, message):
    with pytest.raises(AutoNADError, match=message) as err:
        parse_fitness(spec)
    assert "\n" not in str(err.value)
    if "term" in message:
        assert all(m in str(err.value) for m in FITNESS_METRICS)  # the line says what is allowed


def test_undefined_metrics_count_as_zero():
    weights = parse_fitness("0.5*miou+0.5*seg_recall")
    assert fitness_value(weights, {"miou": 0.8, "seg_recall": None}) == pytest.approx(0.4)
    assert fitness_value(weights, {"miou": 0.8}) == pytest.approx(0.4)
    assert fitness_value(weights, {"miou": 0.6, "seg_recall": 1.0}) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"population": 1}, "population: must be at least 2"),
        ({"generations": 0}, "generations: must be at least 1"),
        ({"parents": 10, "population": 10}, "parents: must be from 1 to population - 1"),
        ({"parents": 0}, "parents"),
        ({"p_mutation": 1.5}, "p_mutation: must be in"),
        ({"p_crossover": -0.1}, "p_crossover: must be in"),
        ({"latency_weight": -1.0}, "latency_weight"),
        ({"latency_share": 1.0}, r"latency_share: must be in \[0, 1\)"),
        ({"latency_weight": 0.01, "latency_share": 0.02}, "not both"),
        ({"objective": "nsga2", "latency_weight": 0.01}, "would be ignored"),
        ({"tolerance": -1.0}, "tolerance"),
        ({"max_latency_ms": 0.0}, "max_latency_ms: must be positive"),
        ({"max_params": -5.0}, "max_params"),
        ({"val_images": 0}, "val_images"),
        ({"workers": -1}, "workers"),
        ({"fitness": "iou"}, "unknown term 'iou'"),
    ],
)
def test_bad_values_give_one_line(changes, message):
    with pytest.raises(AutoNADError, match=message):
        SearchConfig(**changes)


def test_from_dict_checks_keys_and_types_and_round_trips():
    c = SearchConfig(population=20, parents=4, fitness="0.5*miou+0.5*mf1", max_latency_ms=12.5, objective="nsga2")
    assert SearchConfig.from_dict(c.to_dict()) == c
    with pytest.raises(AutoNADError, match="unknown key 'populaton'"):
        SearchConfig.from_dict({"populaton": 5}, "search.yaml")
    with pytest.raises(AutoNADError, match="search.yaml.objective: 'pareto' is not one of"):
        SearchConfig.from_dict({"objective": "pareto"}, "search.yaml")
    with pytest.raises(AutoNADError, match="search.yaml: parents"):
        SearchConfig.from_dict({"population": 5, "parents": 5}, "search.yaml")


def test_constraints_are_named_by_their_flags():
    c = SearchConfig(max_latency_ms=3.0, max_flops=1e9)
    assert c.constraints == {"--max-latency-ms": 3.0, "--max-flops": 1e9}
