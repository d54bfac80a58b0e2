import dataclasses
import json
import random

import pytest
import yaml

from autonad.errors import AutoNADError
from autonad.space import EDGE_NAMES, Arch, BlockArch, DecoderArch, HeadsArch, SearchSpace, StageArch


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.load("autonad")


def fixed_arch() -> Arch:
    stage = StageArch(width=64, blocks=(BlockArch("conv", 8.0, 3), BlockArch("transformer", 7.5)))
    stages = (
        stage,
        StageArch(width=32, blocks=(BlockArch("mlp", 9.0),)),
        StageArch(width=160, blocks=(BlockArch("conv", 4.0, 5),)),
        StageArch(width=288, blocks=(BlockArch("transformer", 3.5),)),
    )
    decoder = DecoderArch(width=128, pool_sizes=(1, 2, 3, 6), edges=("conv3x3",) * 10)
    return Arch(stages=stages, decoder=decoder, heads=HeadsArch(cap=True))


def test_yaml_and_json_round_trip_exactly(space):
    rng = random.Random(1)
    for _ in range(200):
        arch = space.sample(rng)
        assert Arch.from_dict(yaml.safe_load(arch.to_yaml())) == arch
        assert Arch.from_dict(json.loads(arch.to_json())) == arch
        assert Arch.from_dict(arch.to_dict()).hash == arch.hash


def test_save_load_files(tmp_path):
    arch = fixed_arch()
    for name in ("a.yaml", "a.json"):
        arch.save(tmp_path / name)
        assert Arch.load(tmp_path / name) == arch


def test_hash_is_stable_and_discriminates(space):
    # The hash keys evaluation caches across runs: it must not change between versions.
    assert fixed_arch().hash == Arch.from_dict(fixed_arch().to_dict()).hash
    assert fixed_arch().hash == "9bc215d9b6e4ebbb"
    rng = random.Random(0)
    hashes = {space.sample(rng).hash for _ in range(300)}
    assert len(hashes) == 300


def test_readable_yaml_layout():
    data = yaml.safe_load(fixed_arch().to_yaml())
    assert data["stages"][0] == {
        "depth": 2,
        "width": 64,
        "blocks": [{"op": "conv", "kernel": 3, "ffn_ratio": 8.0}, {"op": "transformer", "ffn_ratio": 7.5}],
    }
    assert list(data["decoder"]["edges"]) == list(EDGE_NAMES)
    assert data["heads"] == {"cap": True}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["stages"][0].update(depth=3), "depth is 3 but 2 blocks"),
        (lambda d: d["stages"][0]["blocks"][0].update(op="lstm"), "unknown block op 'lstm'"),
        (lambda d: d["stages"][0]["blocks"][1].update(kernel=3), "a kernel is given for conv"),
        (lambda d: d["stages"][0]["blocks"][0].pop("kernel"), "a kernel is given for conv"),
        (lambda d: d["stages"][0].update(widht=64), "unknown key 'widht'"),
        (lambda d: d["decoder"]["edges"].pop("fpn3"), "missing key 'fpn3'"),
        (lambda d: d["decoder"]["edges"].update(fpn3="conv7x7"), "unknown op 'conv7x7'"),
        (lambda d: d["decoder"].update(width="wide"), "expected int"),
        (lambda d: d["heads"].update(cap="yes"), "expected true or false"),
    ],
)
def test_malformed_arch_gives_one_clear_line(mutate, message):
    data = fixed_arch().to_dict()
    mutate(data)
    with pytest.raises(AutoNADError) as err:
        Arch.from_dict(data, "my.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("my.yaml")


def test_load_rejects_missing_and_invalid_files(tmp_path):
    with pytest.raises(AutoNADError, match="file not found"):
        Arch.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [\n")
    with pytest.raises(AutoNADError, match="not valid YAML"):
        Arch.load(bad)


@pytest.mark.parametrize("name", ["autonad", "tiny"])
def test_upernet_decoder_is_one_choice_of_mfam(name):
    space = SearchSpace.load(name)
    arch = space.sample(random.Random(0))
    decoder = DecoderArch.upernet(arch.decoder.width)
    edges = dict(zip(EDGE_NAMES, decoder.edges))
    assert decoder.pool_sizes == (1, 2, 3, 6)
    assert {edges[f"ppm{i}"] for i in range(1, 5)} | {edges[f"lateral{i}"] for i in range(1, 4)} == {"conv1x1"}
    assert {edges[f"fpn{i}"] for i in range(1, 4)} == {"conv3x3"}
    space.validate(Arch(arch.stages, decoder, arch.heads))


# -- the head's detail path -------------------------------------------------------------------
def _with_detail(arch: Arch, detail: int) -> Arch:
    return dataclasses.replace(arch, decoder=dataclasses.replace(arch.decoder, detail=detail))


def test_detail_is_absent_from_the_dict_when_off_and_present_otherwise():
    assert "detail" not in fixed_arch().to_dict()["decoder"]
    assert fixed_arch().hash == "9bc215d9b6e4ebbb"  # archs without a detail path keep their hash
    with_detail = _with_detail(fixed_arch(), 16)
    assert with_detail.to_dict()["decoder"]["detail"] == 16
    assert with_detail.hash != fixed_arch().hash


def test_detail_round_trips_through_dict_yaml_and_json():
    arch = _with_detail(fixed_arch(), 16)
    assert Arch.from_dict(arch.to_dict()) == arch
    assert Arch.from_dict(yaml.safe_load(arch.to_yaml())).decoder.detail == 16
    assert Arch.from_dict(json.loads(arch.to_json())) == arch
    assert arch.short().endswith("|dec128+d16") and fixed_arch().short().endswith("|dec128")


@pytest.mark.parametrize("value, message", [(-8, "negative"), ("wide", "expected int"), (16.0, "expected int"),
                                            (True, "expected int")])  # fmt: skip
def test_bad_detail_is_one_clear_line(value, message):
    data = fixed_arch().to_dict()
    data["decoder"]["detail"] = value
    with pytest.raises(AutoNADError) as err:
        Arch.from_dict(data, "my.yaml")
    assert message in str(err.value) and "detail" in str(err.value)
    assert str(err.value).startswith("my.yaml") and "\n" not in str(err.value)


def test_negative_detail_is_rejected_directly():
    with pytest.raises(AutoNADError, match="negative"):
        _with_detail(fixed_arch(), -1)
