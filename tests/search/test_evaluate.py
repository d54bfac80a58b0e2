import json
import random
import shutil
import time

import pytest
import torch

from autonad.cluster import check_reachable
from autonad.errors import AutoNADError
from autonad.search import (
    EvalContext,
    EvolutionSearch,
    LocalEvaluator,
    RayEvaluator,
    SubnetComplexity,
    make_evaluator,
    write_outputs,
)
from autonad.space import HeadsArch
from autonad.supernet import SupernetConfig, arch_complexity

from .conftest import fake_latency, small_config

COMPARED = ("miou", "miou_fg", "mf1", "sample_miou", "seg_recall", "confusion", "params", "flops")


@pytest.fixture(scope="module")
def context(tiny_checkpoint) -> EvalContext:
    return EvalContext(tiny_checkpoint.settings(val_images=3))


@pytest.fixture(scope="module")
def archs(context):
    """Four archs: after the first result, two are still to hand out, so a killed worker is always hit."""
    rng = random.Random(11)
    return [context.net.space.sample(rng, heads=context.heads) for _ in range(4)]


@pytest.fixture(scope="module")
def local_results(context, archs):
    return LocalEvaluator(context).evaluate(archs)


def test_context_rebuilds_supernet_and_validation_split_from_the_checkpoint(context, tiny_checkpoint):
    assert context.config.name == "tiny" and context.num_classes == 4
    assert context.heads == HeadsArch(cap=True)  # the supernet has a CaP head and the recipe trains it
    split = json.loads((tiny_checkpoint.run / "split.json").read_text())["splits"]["val"]
    assert len(context.loader.dataset) == min(3, len(split)) == 3
    saved = torch.load(tiny_checkpoint.checkpoint, weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in context.net.state_dict().items())
    assert context.identity["supernet_step"] == 7 and context.identity["val_images"] == 3


def test_local_evaluation_reports_every_metric_and_the_subnet_size(context, archs, local_results):
    first = local_results[0]
    assert {"miou", "mf1", "sample_miou", "seg_recall", "per_class_iou", "confusion"} <= set(first)
    assert list(first["per_class_iou"]) == context.classes == ["background", "scratch", "spot", "crack"]
    size = arch_complexity(SupernetConfig.load("tiny"), archs[0], (32, 32), 4)
    assert (first["params"], first["flops"]) == (size.params, size.flops)
    assert SubnetComplexity(context.net, (32, 32))(archs[0]) == (size.params, size.flops)
    json.dumps(local_results)  # history.jsonl material


def test_ray_pool_returns_the_local_metrics_and_rebuilds_dead_workers(
    ray_session, tiny_checkpoint, archs, local_results
):
    with RayEvaluator(tiny_checkpoint.settings(val_images=3), workers=2) as pool:
        assert len(pool.actors) == 2 and pool.heads == HeadsArch(cap=True)
        assert pool.identity["supernet_step"] == 7
        results = pool.evaluate(archs)
        for ray_result, local in zip(results, local_results):
            assert {k: ray_result[k] for k in COMPARED} == {k: local[k] for k in COMPARED}

        # kill a worker while it holds a candidate: that candidate is run again, none is dropped
        got, killed = {}, None
        for i, result in pool.imap(archs):
            got[i] = result
            if killed is None:
                index, killed = next(iter(pool.in_flight.items()))
                ray_session.kill(killed, no_restart=True)
        assert sorted(got) == [0, 1, 2, 3] and pool.restarts >= 1 and killed not in pool.actors
        for i, local in enumerate(local_results):
            assert {k: got[i][k] for k in COMPARED} == {k: local[k] for k in COMPARED}


def test_a_bad_checkpoint_in_a_ray_worker_gives_one_line(ray_session, tiny_checkpoint, tmp_path):
    with pytest.raises(AutoNADError, match="checkpoint not found"):
        RayEvaluator(tiny_checkpoint.settings(checkpoint=str(tmp_path / "none.pt")), workers=1)


def test_an_unreachable_ray_address_gives_one_line(tiny_checkpoint):
    start = time.monotonic()
    with pytest.raises(AutoNADError, match=r"cannot reach the Ray cluster at 127.0.0.1:1 \(Connection refused\)"):
        RayEvaluator(tiny_checkpoint.settings(), workers=1, address="127.0.0.1:1")
    assert time.monotonic() - start < 10
    with pytest.raises(AutoNADError, match="cannot reach the Ray cluster at ray://127.0.0.1:1"):
        make_evaluator(tiny_checkpoint.settings(), 0, "ray://127.0.0.1:1")
    with pytest.raises(AutoNADError, match="--ray-address nowhere: expected HOST:PORT"):
        check_reachable("nowhere")


def test_checkpoint_and_dataset_problems_give_one_line(tiny_checkpoint, tmp_path):
    with pytest.raises(AutoNADError, match="split.json: split file not found"):
        EvalContext(tiny_checkpoint.settings(split_file=str(tmp_path / "split.json")))
    with pytest.raises(AutoNADError, match="split is for dataset 'folder', not 'synthetic'"):
        EvalContext(tiny_checkpoint.settings(dataset="synthetic"))
    other = tmp_path / "relabelled"
    shutil.copytree(tiny_checkpoint.data, other)
    (other / "classes.txt").write_text("background\nhole\nspot\ncrack\n")
    with pytest.raises(AutoNADError, match="the supernet was trained on classes .* folder has"):
        EvalContext(tiny_checkpoint.settings(dataset=f"folder:{other}"))
    torch.save({"format": "autonad-supernet/1", "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(AutoNADError, match="partial.pt: incomplete supernet checkpoint"):
        EvalContext(tiny_checkpoint.settings(checkpoint=str(tmp_path / "partial.pt")))


def test_a_small_search_on_the_supernet_in_process(context, tmp_path):
    evaluator = make_evaluator(context.settings, 0)
    assert isinstance(evaluator, LocalEvaluator)
    config = small_config(population=4, parents=2, generations=2)
    search = EvolutionSearch(
        context.net.space, config, evaluator, latency_fn=fake_latency, state_path=tmp_path / "search_state.pt",
        show_progress=False,
    )  # fmt: skip
    result = search.run()
    assert len(result.history) >= 4 and all(c.params and c.flops for c in result.history)
    assert all(c.arch.heads == evaluator.heads for c in result.history)
    paths = write_outputs(tmp_path, result, "mIoU")
    assert all(p.stat().st_size > 0 for p in paths.values())
