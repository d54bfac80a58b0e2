import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
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
from autonad.search.evaluate import ACTORS_PER_GPU, ActorPlan, plan_actors
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


@pytest.mark.parametrize(
    ("resources", "workers", "device", "plan"),
    [
        ({"CPU": 16}, None, "auto", ActorPlan(16, 0.0, "cpu")),  # no GPU: one CPU actor per core
        ({"CPU": 16, "GPU": 1}, None, "auto", ActorPlan(4, 0.25, "cuda")),  # ACTORS_PER_GPU share one GPU
        ({"CPU": 16, "GPU": 2}, None, "auto", ActorPlan(8, 0.25, "cuda")),
        ({"CPU": 2, "GPU": 1}, None, "auto", ActorPlan(2, 0.5, "cuda")),  # as many as there are CPUs
        ({"CPU": 16, "GPU": 2}, 2, "auto", ActorPlan(2, 1.0, "cuda")),  # whole GPUs, never more than one
        ({"CPU": 16, "GPU": 1}, 3, "cuda", ActorPlan(3, 1 / 3, "cuda")),
        ({"CPU": 16, "GPU": 2}, 3, "auto", ActorPlan(3, 0.5, "cuda")),  # 2 + 1 on the two GPUs: all fit
        ({"CPU": 16, "GPU": 1}, None, "cpu", ActorPlan(16, 0.0, "cpu")),  # --device cpu asks for none
    ],
)
def test_actor_plans_follow_the_device_rule_and_the_clusters_resources(resources, workers, device, plan):
    assert plan_actors(resources, workers, device, ACTORS_PER_GPU) == plan


def test_actor_plans_the_cluster_cannot_hold_are_one_line():
    with pytest.raises(AutoNADError, match="--device cuda: the Ray cluster has no GPU"):
        plan_actors({"CPU": 4}, None, "cuda", 4)
    with pytest.raises(AutoNADError, match="5 Ray workers need 5 CPUs, the Ray cluster has 4"):
        plan_actors({"CPU": 4, "GPU": 1}, 5, "auto", 4)
    with pytest.raises(AutoNADError, match="1 Ray workers need 1 CPUs, the Ray cluster has 0"):  # head of 0 CPUs
        plan_actors({"CPU": 0}, None, "auto", 4)


FAKE_GPU_POOL = """
import json, sys, ray
from autonad.errors import AutoNADError
from autonad.search.evaluate import EvalSettings, RayEvaluator
ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
try:
    RayEvaluator(EvalSettings(**json.loads(sys.argv[1])))
except AutoNADError as e:
    print(e)
"""


@pytest.mark.slow
def test_a_ray_cluster_with_a_gpu_gets_gpu_actors(tiny_checkpoint):
    """A fake 1-GPU Ray resource: the pool asks Ray for half a GPU per actor (2 CPUs), Ray hands each the
    GPU, and the actor evaluates with CUDA, which this CPU machine lacks: the one line says so."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA (on a GPU the actors would simply evaluate)")
    settings = json.dumps(dataclasses.asdict(tiny_checkpoint.settings()))
    result = subprocess.run([sys.executable, "-c", FAKE_GPU_POOL, settings], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip().splitlines()[-1]
    assert "a Ray worker given GPU [0] on" in line and "--device cuda: no CUDA device is available" in line
