import csv
import json

import pytest

from autonad.search import EvolutionSearch, plot_pareto, write_outputs
from autonad.search.outputs import PARETO_COLUMNS
from autonad.space import Arch

from .conftest import CountingEvaluator, fake_latency, small_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(tiny_space):
    config = small_config(objective="nsga2", generations=3)
    return EvolutionSearch(tiny_space, config, CountingEvaluator(), latency_fn=fake_latency, show_progress=False).run()


def test_outputs_hold_the_front_the_history_and_a_plot(result, tmp_path):
    paths = write_outputs(tmp_path / "run", result, "mIoU")
    assert set(paths) == {"pareto.csv", "history.jsonl", "pareto.png"}

    rows = list(csv.DictReader(paths["pareto.csv"].open()))
    assert tuple(rows[0]) == PARETO_COLUMNS
    assert [r["hash"] for r in rows] == [c.hash for c in result.pareto]
    first = result.pareto[0]
    assert float(rows[0]["fitness"]) == pytest.approx(first.fitness, rel=1e-5)
    assert float(rows[0]["latency_ms"]) == pytest.approx(first.latency_ms, rel=1e-5)
    assert rows[0]["arch"] == first.arch.short() and rows[0]["params"] == ""

    lines = paths["history.jsonl"].read_text().splitlines()
    assert len(lines) == len(result.history)
    records = [json.loads(line) for line in lines]
    assert set(records[0]) == {"generation", "hash", "arch", "metrics", "fitness", "latency_ms", "score", "params",
                               "flops"}  # fmt: skip
    assert [r["hash"] for r in records] == [c.hash for c in result.history]
    assert all(Arch.from_dict(r["arch"]).hash == r["hash"] for r in records)

    assert paths["pareto.png"].read_bytes()[:8] == PNG
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["history.jsonl", "pareto.csv", "pareto.png"]


def test_plot_without_latencies(tiny_space, tmp_path):
    plain = EvolutionSearch(tiny_space, small_config(generations=2), CountingEvaluator(), show_progress=False).run()
    plot_pareto(tmp_path / "p.png", plain.history, plain.pareto, plain.best)
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temp file left behind


def test_outputs_replace_earlier_ones(result, tmp_path):
    (tmp_path / "pareto.csv").write_text("old\n")
    write_outputs(tmp_path, result)
    assert (tmp_path / "pareto.csv").read_text().startswith("hash,fitness,")


def test_ensemble_members_are_diverse_front_archs_within_the_latency_budget(result, tmp_path):
    from autonad.errors import AutoNADError
    from autonad.search.outputs import arch_family, load_history, pick_members

    write_outputs(tmp_path / "run", result, "mIoU")
    history = load_history(tmp_path / "run")
    assert [c.hash for c in history] == [c.hash for c in result.history]
    picked = pick_members(history, 3)
    assert len({arch_family(c.arch) for c in picked}) == 3
    assert picked[0].fitness == max(c.fitness for c in history)  # the fittest front arch leads
    front = {c.hash for c in result.pareto}
    assert [c.hash in front for c in picked] == sorted((c.hash in front for c in picked), reverse=True)
    budget = sum(sorted(c.latency_ms for c in history)[:2]) * 1.5
    within = pick_members(history, 2, max_latency_ms=budget)
    assert sum(c.latency_ms for c in within) <= budget
    assert max(c.latency_ms for c in pick_members(history, 2, budget, parallel=True)) <= budget
    with pytest.raises(AutoNADError, match="different operator/width families within 0.001 ms"):
        pick_members(history, 2, max_latency_ms=0.001)
    with pytest.raises(AutoNADError, match="no history.jsonl"):
        load_history(tmp_path)


def test_a_fit_member_that_leaves_no_room_for_the_others_is_passed_over(result):
    """The fittest arch alone fills the budget: a greedy pick would take it and find no room for a
    second member; the pick passes it over for two that fit together."""
    import dataclasses

    from autonad.search.outputs import arch_family, pick_members

    by_family = {}
    for c in sorted(result.history, key=lambda c: -c.fitness):
        by_family.setdefault(arch_family(c.arch), c)
    fittest, *others = list(by_family.values())[:3]
    history = [dataclasses.replace(fittest, latency_ms=4.0), dataclasses.replace(others[0], latency_ms=1.0),
               dataclasses.replace(others[1], latency_ms=1.5)]  # fmt: skip
    picked = pick_members(history, 2, max_latency_ms=4.0)
    assert {c.hash for c in picked} == {others[0].hash, others[1].hash}
