import random

import pytest
import torch

from autonad.latency.components import KINDS, ComponentFactory, arch_keys, kind_of, profiling_supernet
from autonad.latency.roofline import ROOFLINE_DEVICES, KernelCost, roofline_ms
from autonad.space import SearchSpace


@pytest.mark.parametrize("name", ["tiny", "autonad"])
def test_every_arch_maps_to_existing_unique_components(name):
    space = SearchSpace.load(name)
    components = list(ComponentFactory(space, (96, 128), 1, [2, 4]).components())
    keys = [c.key for c in components]
    assert len(keys) == len(set(keys))
    assert {c.kind for c in components} == set(KINDS)
    assert all(kind_of(c.key) == c.kind for c in components)
    rng = random.Random(0)
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(20))]:
        assert set(arch_keys(space, arch, 4)) <= set(keys)


@pytest.mark.parametrize("name", ["tiny", "autonad"])
def test_components_add_up_to_the_whole_network(name):
    """The decomposition misses nothing: per-kernel roofline costs of an arch's components sum
    to the cost of the extracted network run whole (same kernels; only view glue differs)."""
    space, spec, classes = SearchSpace.load(name), ROOFLINE_DEVICES["rtx3090"], 3
    components = {c.key: c for c in ComponentFactory(space, (96, 128), 1, [classes]).components()}
    net = profiling_supernet(space, classes)
    for seed in range(2):
        arch = space.sample(random.Random(seed))
        parts = sum(roofline_ms(components[k], spec) for k in arch_keys(space, arch, classes))
        model, whole = net.extract(arch).to("meta"), KernelCost(spec)
        with torch.inference_mode(), whole:
            model(torch.randn(1, 3, 96, 128, device="meta"))
        assert parts == pytest.approx(whole.seconds * 1e3, rel=0.01)


def test_component_modules_run_on_their_inputs():
    space = SearchSpace.load("tiny")
    for comp in ComponentFactory(space, (64, 64), 1, [2]).components():
        module, inputs = comp.build()
        with torch.inference_mode():
            out = module(*inputs)
        assert torch.isfinite(out).all(), comp.key
