"""Outputs of the segmentation and CaP heads; CaP gradients reach the encoder only."""

from __future__ import annotations

import pytest
import torch

from autonad.space import HeadsArch


@pytest.mark.parametrize("cap", [False, True])
def test_output_shapes(tiny_net, cap):
    tiny_net.set_arch(tiny_net.space.smallest(heads=HeadsArch(cap=cap)))
    with torch.no_grad():
        out = tiny_net(torch.randn(2, 3, 50, 70))
    assert out["seg"].shape == (2, 4, 50, 70)
    if cap:  # tiny.yaml: multilabel -> one logit per defect class
        assert out["cap"].shape == (2,) and out["cls"].shape == (2, 3)
    else:
        assert set(out) == {"seg"}


def test_cap_gradients_reach_the_encoder_only(tiny_net):
    tiny_net.set_arch(tiny_net.space.largest(heads=HeadsArch(cap=True)))
    tiny_net.zero_grad(set_to_none=True)
    out = tiny_net(torch.randn(2, 3, 64, 64))
    (out["cap"].sum() + out["cls"].sum()).backward()
    grads = {name: p.grad for name, p in tiny_net.named_parameters()}
    assert all(g is None for n, g in grads.items() if n.startswith(("decoder.", "seg_head.")))
    assert any(g is not None and g.any() for n, g in grads.items() if n.startswith("encoder.stages.0."))
    assert all(grads[n] is not None for n in grads if n.startswith("cap_head."))
    tiny_net.zero_grad(set_to_none=True)


def test_train_mode_is_stochastic_and_eval_is_not(tiny_net):
    tiny_net.set_arch(tiny_net.space.largest())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        tiny_net.train()
        a, b = tiny_net(x)["seg"], tiny_net(x)["seg"]
        tiny_net.eval()
        c, d = tiny_net(x)["seg"], tiny_net(x)["seg"]
    assert not torch.equal(a, b) and torch.equal(c, d)
