"""Gradients reach exactly the weights the active arch uses (the active slices), no others."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autonad.supernet import Supernet, SupernetConfig
from autonad.supernet.elastic import Elastic


def _supernet(name: str, mode: str) -> Supernet:
    torch.manual_seed(0)
    config = dataclasses.replace(SupernetConfig.load(name), weight_sharing=mode)
    return Supernet(config, num_classes=3).eval()  # eval: no dropout / drop-path randomness


def _backward(net: Supernet, x: torch.Tensor) -> None:
    net.zero_grad(set_to_none=True)
    out = net(x)
    gen = torch.Generator().manual_seed(1)
    loss = sum((value * torch.randn(value.shape, generator=gen)).sum() for value in out.values())
    loss.backward()


def _check_gradients(net: Supernet) -> list[str]:
    used = net.active_parameters()
    problems = []
    for name, param in net.named_parameters():
        grad = param.grad
        if name not in used:
            if grad is not None and grad.any():
                problems.append(f"{name}: unused but has a gradient")
            continue
        if grad is None:
            problems.append(f"{name}: used but has no gradient")
            continue
        index = used[name]
        inside = torch.zeros_like(grad, dtype=torch.bool)
        inside[index] = True
        if grad[~inside].any():
            problems.append(f"{name}: gradient outside the active slice {index}")
        if not grad[index].any():
            problems.append(f"{name}: no gradient inside the active slice")
        # That forward uses exactly these slices (no more, no less) is tested in test_views;
        # gradients cannot show it element by element (e.g. a channel after ReLU may be dead,
        # the k bias gets no gradient since softmax ignores a shift per query).
    return problems


@pytest.mark.parametrize("mode", ["cross", "entangled", "classical"])
def test_only_active_slices_get_gradients_tiny(mode, some_archs):
    net = _supernet("tiny", mode)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for arch in some_archs(net.space, 3, seed=21):
        net.set_arch(arch)
        _backward(net, x)
        problems = _check_gradients(net)
        assert not problems, f"{arch.short()}:\n" + "\n".join(problems)


@pytest.mark.parametrize("mode", ["cross", "entangled", "classical"])
def test_only_active_slices_get_gradients_autonad(mode, some_archs):
    net = _supernet("autonad", mode)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for arch in some_archs(net.space, 1, seed=22)[1:]:  # the smallest and a random arch
        net.set_arch(arch)
        _backward(net, x)
        problems = _check_gradients(net)
        assert not problems, f"{arch.short()}:\n" + "\n".join(problems)


def test_every_parameter_lives_in_an_elastic_layer(autonad_net):
    """So `active_parameters` can account for all of them."""
    for module in autonad_net.modules():
        own = {name for name, _ in module.named_parameters(recurse=False)}
        if own:
            assert isinstance(module, Elastic), type(module)
            assert own == set(module.active_slices()), type(module)


@pytest.mark.parametrize("detail", [0, 8, 16])
def test_only_active_slices_get_gradients_with_a_detail_path(detail, detail_space, with_detail, some_archs):
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.load("tiny"), num_classes=3, space=detail_space).eval()
    x = torch.randn(1, 3, 72, 40, generator=torch.Generator().manual_seed(0))
    for arch in some_archs(net.space, 1, seed=23 + detail):
        net.set_arch(with_detail(arch, detail))
        _backward(net, x)
        problems = _check_gradients(net)
        assert not problems, f"{arch.short()}:\n" + "\n".join(problems)
