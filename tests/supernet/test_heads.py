"""Outputs of the segmentation and CaP heads; CaP gradients reach the encoder only."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from autonad.errors import AutoNADError
from autonad.space import HeadsArch
from autonad.supernet import Supernet, SupernetConfig


@pytest.mark.parametrize("heads", [HeadsArch(), HeadsArch(cap=True), HeadsArch(classes=True),
                                   HeadsArch(cap=True, classes=True)])  # fmt: skip
def test_output_shapes(tiny_net, heads):
    """Each CaP stage's output is given only where the arch turns it on (tiny.yaml is multi-label)."""
    tiny_net.set_arch(tiny_net.space.smallest(heads=heads))
    with torch.no_grad():
        out, extracted = tiny_net(torch.randn(2, 3, 50, 70)), tiny_net.extract()(torch.randn(2, 3, 50, 70))
    assert out["seg"].shape == (2, 4, 50, 70)
    want = {"seg"} | ({"cap"} if heads.cap else set()) | ({"cls"} if heads.classes else set())
    assert set(out) == set(extracted) == want
    assert tiny_net.metadata_for(tiny_net.arch)["outputs"] == ",".join(["seg", *sorted(want - {"seg"})])
    if heads.cap:
        assert out["cap"].shape == (2,)
    if heads.classes:
        assert out["cls"].shape == (2, 3)


def test_class_logits_need_a_multilabel_supernet():
    net = Supernet(SupernetConfig.load("tiny-fine"), num_classes=4)
    plain = Supernet(dataclasses.replace(net.config, heads=dataclasses.replace(net.config.heads, multilabel=False)), 4)
    with pytest.raises(AutoNADError, match="multilabel"):
        plain.set_arch(plain.space.smallest(heads=HeadsArch(cap=True, classes=True)))


def test_the_class_stage_keeps_the_arch_hash_of_archs_without_it(tiny_net):
    arch = tiny_net.space.smallest(heads=HeadsArch(cap=True))
    both = dataclasses.replace(arch, heads=HeadsArch(cap=True, classes=True))
    assert "classes" not in arch.to_json() and arch.hash != both.hash
    assert type(arch).from_dict(json.loads(both.to_json())) == both


def test_cap_gradients_reach_the_encoder_only(tiny_net):
    tiny_net.set_arch(tiny_net.space.largest(heads=HeadsArch(cap=True, classes=True)))
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


# -- the detail path ---------------------------------------------------------------------------
@pytest.mark.parametrize("detail", [0, 8, 16])
def test_extracted_detail_head_equals_the_supernet(detail_net, with_detail, some_archs, max_abs_diff, detail):
    gen = torch.Generator().manual_seed(detail)
    inputs = [torch.randn(2, 3, 64, 64, generator=gen), torch.randn(1, 3, 72, 40, generator=gen)]
    for arch in some_archs(detail_net.space, 2, seed=40 + detail):
        arch = with_detail(arch, detail)
        detail_net.set_arch(arch)
        model = detail_net.extract(arch).eval()
        with torch.no_grad():
            for x in inputs:
                want, got = detail_net(x), model(x)
                assert want["seg"].shape == (x.shape[0], 4, *x.shape[2:])
                assert max_abs_diff(want, got) <= 1e-5, f"{arch.short()} {tuple(x.shape)}"


def test_detail_path_changes_the_output(detail_net, with_detail):
    """Detail 0 is the plain head: it ignores the detail weights, while detail 16 uses them."""
    arch = detail_net.space.largest()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        detail_net.set_arch(with_detail(arch, 0))
        plain = detail_net(x)["seg"]
        detail_net.set_arch(with_detail(arch, 16))
        refined = detail_net(x)["seg"]
    assert not torch.allclose(plain, refined, atol=1e-6)


def test_extracted_head_has_a_detail_path_of_the_arch_width(detail_net, with_detail):
    arch = detail_net.space.smallest()
    assert detail_net.extract(with_detail(arch, 0)).seg_head.detail is None
    for detail in (8, 16):
        path = detail_net.extract(with_detail(arch, detail)).seg_head.detail
        width = arch.decoder.width
        if detail_net.space.decoder.detail_levels == 2:
            assert [layer.conv.weight.shape for layer in [*path.full_res, *path.half_res]] == [
                (detail, 3, 3, 3), (detail, detail, 3, 3), (2 * detail, detail, 3, 3), (2 * detail, 2 * detail, 3, 3)
            ]  # fmt: skip
            assert path.half_res[0].conv.stride == (2, 2) and path.full_res[0].conv.stride == (1, 1)
            assert path.merge_half.proj.weight.shape == (2 * detail, width, 1, 1)
            assert path.merge_full.proj.weight.shape == (detail, 2 * detail, 1, 1)
            assert path.merge_full.norm.num_groups == detail // 8 and path.merge_half.norm.num_groups == detail // 4
            assert path.classifier.weight.shape == (4, detail, 1, 1)
            continue
        assert path.down.conv.weight.shape == (detail, 3, 3, 3)
        assert path.refine.conv.weight.shape == (detail, detail, 3, 3)
        assert path.proj.weight.shape == (detail, width, 1, 1)
        assert path.mix.weight.shape == (detail, detail, 3, 3)
        assert path.norm.weight.shape == (detail,) and path.norm.num_groups == detail // 8
        assert path.classifier.weight.shape == (4, detail, 1, 1)


@pytest.mark.parametrize("detail", [0, 8, 16])
def test_extracted_params_are_the_active_slices_with_detail(detail_net, with_detail, detail):
    arch = with_detail(detail_net.space.largest(), detail)
    detail_net.set_arch(arch)
    used = detail_net.active_parameters()
    params = dict(detail_net.named_parameters())
    assert any(n.startswith("seg_head.detail.") for n in used) == (detail > 0)
    active = sum(params[name][index].numel() for name, index in used.items())
    assert active == sum(p.numel() for p in detail_net.extract(arch).parameters())


@pytest.mark.parametrize("detail", [0, 8, 16])
def test_gradients_reach_the_detail_path_only_when_it_is_on(detail_net, with_detail, detail):
    detail_net.set_arch(with_detail(detail_net.space.smallest(), detail))
    detail_net.zero_grad(set_to_none=True)
    detail_net(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))["seg"].square().sum().backward()
    grads = {n: p.grad for n, p in detail_net.named_parameters() if n.startswith("seg_head.detail.")}
    assert grads
    if detail:
        assert all(g is not None and g.any() for g in grads.values()), [n for n, g in grads.items() if g is None]
    else:
        assert all(g is None for g in grads.values())
    detail_net.zero_grad(set_to_none=True)


def test_detail_classifier_is_class_specific(detail_net, tiny_net):
    keys = detail_net.class_specific_keys()
    assert {"seg_head.detail.classifier.weight", "seg_head.detail.classifier.bias"} <= set(keys)
    assert not [k for k in keys if k.startswith("seg_head.detail.") and ".classifier." not in k]
    assert not [k for k in tiny_net.class_specific_keys() if "detail" in k]
    assert tiny_net.seg_head.detail is None


def test_a_full_resolution_detail_path_extracts_exactly(detail_space, with_detail, max_abs_diff):
    space = dataclasses.replace(detail_space, decoder=dataclasses.replace(detail_space.decoder, detail_stride=1))
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.load("tiny"), num_classes=4, space=space).eval()
    arch = with_detail(space.smallest(), 8)
    net.set_arch(arch)
    model = net.extract(arch).eval()
    assert model.seg_head.detail.down.conv.stride == (1, 1)
    x = torch.randn(1, 3, 72, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = net(x), model(x)
        features = model.seg_head.detail.refine(model.seg_head.detail.down(x))
    assert features.shape[-2:] == x.shape[-2:]  # the path runs at the input's resolution
    assert max_abs_diff(want, got) <= 1e-5
