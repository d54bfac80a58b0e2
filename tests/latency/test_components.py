import dataclasses
import random

import pytest
import torch

from autonad.latency.components import (
    ComponentFactory,
    arch_keys,
    calibration_kinds,
    embed_key,
    head_key,
    kind_of,
    op_type_of,
    profiling_supernet,
)
from autonad.latency.roofline import kernel_counts, roofline_ms, roofline_spec
from autonad.latency.table import load_tables
from autonad.space import SearchSpace, parse_choice


@pytest.mark.parametrize("name", ["tiny", "autonad", "autonad-fine", "autonad-edge"])
def test_every_arch_maps_to_existing_unique_components(name):
    space = SearchSpace.load(name)
    components = list(ComponentFactory(space, (96, 128), 1, [2, 4]).components())
    keys = [c.key for c in components]
    assert len(keys) == len(set(keys))
    operators = {parse_choice(c)[0].calibration_kind for st in space.stages for c in st.op_choices}
    assert {c.kind for c in components} == {k for k in calibration_kinds() if not k.startswith("block.")} | operators
    assert all(kind_of(c.key) == c.kind for c in components)
    rng = random.Random(0)
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(20))]:
        assert set(arch_keys(space, arch, 4)) <= set(keys)


@pytest.mark.parametrize("name", ["tiny", "autonad", "autonad-fine"])
def test_components_add_up_to_the_whole_network(name):
    """The decomposition misses nothing: per-kernel roofline costs of an arch's components sum
    to the cost of the extracted network run whole (same kernels; only view glue differs)."""
    space, spec, classes = SearchSpace.load(name), roofline_spec(load_tables("rtx3090")), 3
    components = {c.key: c for c in ComponentFactory(space, (96, 128), 1, [classes]).components()}
    net = profiling_supernet(space, classes)
    for seed in range(2):
        arch = space.sample(random.Random(seed))
        parts = sum(roofline_ms(components[k], spec) for k in arch_keys(space, arch, classes))
        whole = kernel_counts(net.extract(arch), [torch.zeros(1, 3, 96, 128)], spec).ms(spec)
        assert parts == pytest.approx(whole, rel=0.01)


def test_component_modules_run_on_their_inputs():
    space = SearchSpace.load("tiny")
    for comp in ComponentFactory(space, (64, 64), 1, [2]).components():
        module, inputs = comp.build()
        with torch.inference_mode():
            out = module(*inputs)
        assert torch.isfinite(out).all(), comp.key


# -- the head's detail path -------------------------------------------------------------------
def _detail_space() -> SearchSpace:
    tiny = SearchSpace.load("tiny")
    return dataclasses.replace(tiny, decoder=dataclasses.replace(tiny.decoder, detail=[0, 8, 16]))


def test_head_key_names_the_detail_width_only_when_on():
    assert head_key(128, 4) == head_key(128, 4, 0) == "head c128 k4"
    assert head_key(128, 4, 16) == "head c128 k4 d16"
    assert head_key(128, 4, 16, detail_stride=1) == "head c128 k4 d16s1" and head_key(128, 4, 0, 1) == "head c128 k4"
    assert (
        head_key(128, 4, 16, 1, detail_levels=2) == "head c128 k4 d16l2" and head_key(128, 4, 0, 1, 2) == "head c128 k4"
    )
    assert kind_of(head_key(128, 4, 16)) == "head"


def test_arch_keys_end_with_the_detail_head():
    space = _detail_space()
    arch = space.smallest()
    on = dataclasses.replace(arch, decoder=dataclasses.replace(arch.decoder, detail=16))
    assert arch_keys(space, arch, 4)[-1] == f"head c{arch.decoder.width} k4"
    assert arch_keys(space, on, 4)[-1] == f"head c{arch.decoder.width} k4 d16"
    assert arch_keys(space, on, 4)[:-1] == arch_keys(space, arch, 4)[:-1]


def test_every_detail_head_is_a_component_and_runs():
    space = _detail_space()
    heads = {c.key: c for c in ComponentFactory(space, (64, 48), 2, [2, 3]).components() if c.kind == "head"}
    want = {head_key(w, k, d) for w in space.decoder.width for k in (2, 3) for d in (0, 8, 16)}
    assert set(heads) == want
    rng = random.Random(0)
    keys = {k for a in (space.sample(rng) for _ in range(30)) for k in arch_keys(space, a, 3)}
    assert {k for k in keys if kind_of(k) == "head"} <= set(heads)
    for key, comp in heads.items():
        module, inputs = comp.build()
        with torch.inference_mode():
            out = module(*inputs)
        classes, detail = int(key.split()[2][1:]), key.endswith(("d8", "d16"))
        assert out.shape == (2, classes, 64, 48) and torch.isfinite(out).all(), key
        assert (module.detail is not None) == detail, key


def test_detail_components_add_up_to_the_whole_network():
    space, spec, classes = _detail_space(), roofline_spec(load_tables("rtx3090")), 3
    components = {c.key: c for c in ComponentFactory(space, (96, 128), 1, [classes]).components()}
    net = profiling_supernet(space, classes)
    arch = space.sample(random.Random(1))
    for detail in (0, 16):
        arch = dataclasses.replace(arch, decoder=dataclasses.replace(arch.decoder, detail=detail))
        parts = sum(roofline_ms(components[k], spec) for k in arch_keys(space, arch, classes))
        whole = kernel_counts(net.extract(arch), [torch.zeros(1, 3, 96, 128)], spec).ms(spec)
        assert parts == pytest.approx(whole, rel=0.01), detail


def test_the_conv_stem_has_its_own_key():
    assert embed_key(1, 3, 32) == "s1.embed c3-32" and embed_key(1, 3, 32, "conv") == "s1.stem c3-32"
    assert embed_key(2, 32, 64, "conv") == "s2.embed c32-64"  # later stages keep their patch embedding
    assert kind_of("s1.stem c3-32") == "embed"
    fine = SearchSpace.load("autonad-fine")
    arch = fine.smallest()
    assert arch_keys(fine, arch, 2)[0] == f"s1.stem c3-{arch.stages[0].width}"
    assert arch_keys(SearchSpace.load("autonad"), arch, 2)[1:-1] == arch_keys(fine, arch, 2)[1:-1]


@pytest.mark.parametrize(
    "key, kind",
    [("s1.stem c3-32", "stem"), ("s2.conv3 w64 r8.0", "block conv3"), ("s3.embed c96-160", "embed"),
     ("s3.transformer w192 r4.50", "block transformer"), ("lateral1 dil3x3 c32-128", "edge dil3x3"),
     ("ppm dwsep3x3 c288 p6", "edge dwsep3x3"), ("fpn2 conv1x1 c96", "edge conv1x1"), ("decoder c288-128", "decoder"),
     ("head c128 k4", "head"), ("head c128 k4 d16l2", "head (detail path)")],
)  # fmt: skip
def test_every_key_has_an_operator_type(key, kind):
    assert op_type_of(key) == kind
