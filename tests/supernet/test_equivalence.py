"""The extracted subnet computes exactly what the supernet computes for that arch."""

from __future__ import annotations

import pytest
import torch

from autonad.supernet import SegmentationNet
from autonad.supernet.elastic import Elastic


def _check(net, archs, inputs: list[torch.Tensor], max_abs_diff) -> list[str]:
    failures = []
    for arch in archs:
        net.set_arch(arch)
        model = net.extract(arch).eval()
        with torch.no_grad():
            for x in inputs:
                diff = max_abs_diff(net(x), model(x))
                if not diff <= 1e-5:
                    failures.append(f"{arch.short()} input {tuple(x.shape)}: max diff {diff:.2e}")
    return failures


@pytest.mark.parametrize("space_name, n", [("autonad", 50), ("tiny", 20), ("autonad_fine", 20)])
def test_extracted_output_equals_supernet_output(space_name, n, request, some_archs, max_abs_diff):
    net = request.getfixturevalue(f"{space_name}_net")
    gen = torch.Generator().manual_seed(0)
    # 64x64 makes the stage-4 map 2x2 (PPM pools up to 6 are larger); 72x40 is not divisible
    # by the SR ratios (ceil pooling) and is not square.
    inputs = [torch.randn(2, 3, 64, 64, generator=gen), torch.randn(1, 3, 72, 40, generator=gen)]
    failures = _check(net, some_archs(net.space, n, seed=1), inputs, max_abs_diff)
    assert not failures, "\n".join(failures)


def test_extracted_model_is_plain_torch(tiny_net):
    model = tiny_net.extract(tiny_net.space.largest())
    assert type(model) is SegmentationNet
    assert not any(isinstance(m, Elastic) for m in model.modules())
    plain = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm, torch.nn.GroupNorm)
    for module in model.modules():
        if list(module.parameters(recurse=False)):
            assert isinstance(module, plain), type(module)


def test_extracted_params_are_the_active_slices(autonad_net, some_archs):
    """Parameter count of the extract = size of the regions the supernet reports as used."""
    for arch in some_archs(autonad_net.space, 5, seed=2):
        autonad_net.set_arch(arch)
        used = autonad_net.active_parameters()
        params = dict(autonad_net.named_parameters())
        active = sum(params[name][index].numel() for name, index in used.items())
        assert active == sum(p.numel() for p in autonad_net.extract(arch).parameters())


def test_extracted_model_keeps_arch_metadata(tiny_net, some_archs):
    arch = some_archs(tiny_net.space, 1, seed=3)[-1]
    meta = tiny_net.extract(arch).metadata
    assert meta["arch"] == arch.to_json() and meta["arch_hash"] == arch.hash
    assert meta["search_space"] == "tiny" and meta["num_classes"] == "4"
    assert all(isinstance(v, str) for v in meta.values())


def test_extract_follows_device_mode_and_leaves_supernet_untouched(tiny_net):
    arch = tiny_net.space.smallest()
    before = {n: p.detach().clone() for n, p in tiny_net.named_parameters()}
    tiny_net.train()
    try:
        model = tiny_net.extract(arch)
        assert model.training
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)  # the extract owns its weights
    finally:
        tiny_net.eval()
    assert all(torch.equal(before[n], p) for n, p in tiny_net.named_parameters())
