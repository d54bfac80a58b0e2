import random
from collections import Counter

import pytest

from autonad.errors import AutoNADError
from autonad.latency.predictor import LatencyPredictor
from autonad.latency.prior import LatencyPrior
from autonad.space import SearchSpace

from .conftest import synthetic_profile

COST = {"transformer": 4.0, "conv3": 1.0, "conv5": 2.0, "mlp": 3.0}


def test_prior_biases_sampling_toward_faster_ops():
    space = SearchSpace.load("tiny")
    prior = LatencyPrior.from_profile(synthetic_profile(space, COST), space, temperature=0.5)
    rng = random.Random(0)
    counts = Counter(b.choice for _ in range(3000) for st in space.sample(rng, prior.gene_weights).stages
                     for b in st.blocks)  # fmt: skip
    total = sum(counts.values())
    freq = {op: counts[op] / total for op in COST}
    assert freq["conv3"] > freq["conv5"] > freq["mlp"] > freq["transformer"]
    assert freq["conv3"] > 0.5 and freq["transformer"] < 0.1
    uniform = Counter(b.choice for _ in range(3000) for st in space.sample(rng).stages for b in st.blocks)
    assert max(uniform.values()) / min(uniform.values()) < 1.15  # without the prior: no preference


def test_prior_lowers_the_mean_predicted_latency():
    space = SearchSpace.load("tiny")
    profile = synthetic_profile(space, COST)
    pred = LatencyPredictor("d", profile, space, classes=2)
    prior = LatencyPrior.from_profile(profile, space, temperature=1.0)
    rng = random.Random(1)
    biased = sum(pred.predict(space.sample(rng, prior.gene_weights)) for _ in range(300))
    plain = sum(pred.predict(space.sample(rng)) for _ in range(300))
    assert biased < 0.9 * plain


def test_temperature_controls_the_sharpness():
    space = SearchSpace.load("tiny")
    profile = synthetic_profile(space, COST)
    sharp = LatencyPrior.from_profile(profile, space, 0.2).gene_weights["s1.b1.op"]
    soft = LatencyPrior.from_profile(profile, space, 5.0).gene_weights["s1.b1.op"]
    assert max(sharp) > 0.8 and max(soft) < 0.35
    assert sum(sharp) == pytest.approx(1.0)
    with pytest.raises(AutoNADError, match="temperature"):
        LatencyPrior.from_profile(profile, space, 0.0)


def test_prior_fitted_from_training_records_ranks_ops_by_cost():
    space = SearchSpace.load("tiny")
    pred = LatencyPredictor("d", synthetic_profile(space, COST), space, classes=2)
    rng = random.Random(2)
    records = []
    for _ in range(120):
        arch = space.sample(rng)
        records.append({"arch": arch.to_dict(), "ms": pred.predict(arch) * rng.uniform(0.97, 1.03)})
    weights = LatencyPrior.from_records(records, space).gene_weights["s2.b1.op"]
    order = [space.stages[1].op_choices[i] for i in sorted(range(4), key=lambda i: -weights[i])]
    assert order == ["conv3", "conv5", "mlp", "transformer"]
    with pytest.raises(AutoNADError, match="at least 5 latency records"):
        LatencyPrior.from_records(records[:3], space)


def test_heatmap_is_written(tmp_path):
    space = SearchSpace.load("autonad")
    from autonad.latency.table import load_profile

    _, profile = load_profile("jetson", "autonad", (320, 320))
    LatencyPrior.from_profile(profile, space).heatmap(tmp_path / "prior.png")
    assert (tmp_path / "prior.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _records(space, profile, n: int, device: str) -> list[dict]:
    pred, rng = LatencyPredictor("d", profile, space, classes=2), random.Random(3)
    return [{"arch": (a := space.sample(rng)).to_dict(), "ms": pred.predict(a), "device": device} for _ in range(n)]


def test_auto_takes_the_records_only_when_timed_on_the_target_and_enough():
    from autonad.latency.prior import choose_prior

    space = SearchSpace.load("tiny")
    profile = synthetic_profile(space, COST)
    profile.provenance, profile.hardware = "estimate", "NVIDIA GeForce RTX 3090 (82 SMs); peak 35580 GFLOP/s fp32"
    here = "NVIDIA GeForce RTX 3090"  # the supernet trained on the target GPU
    enough = _records(space, profile, 150, here)
    assert choose_prior("auto", profile, space, enough, 1.0, "t").source.startswith("fit to 150 training latency")
    assert choose_prior("table", profile, space, enough, 1.0, "t").source == "table t"
    elsewhere = choose_prior("auto", profile, space, _records(space, profile, 120, "NVIDIA H200"), 1.0, "t")
    assert elsewhere.source == "table t (its 120 training latency records were timed on NVIDIA H200, not the target)"
    few = choose_prior("auto", profile, space, enough[:10], 1.0, "t")
    assert few.source.startswith("table t (10 training latency records are too few to fit")
    forced = choose_prior("records", profile, space, enough[:10], 1.0, "t")
    assert forced.source == "fit to 10 training latency records"
    assert "no training latency records" in choose_prior("auto", profile, space, [], 1.0, "t").source
    profile.provenance = "measured"
    assert "measured per component on the target" in choose_prior("auto", profile, space, enough, 1.0, "t").source
    with pytest.raises(AutoNADError, match="unknown prior source 'fig5'"):
        choose_prior("fig5", profile, space, enough, 1.0, "t")
