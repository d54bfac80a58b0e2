"""Weight-sharing modes (paper Table VII): what shares weights with what."""

from __future__ import annotations

import pytest
import torch

from autonad.supernet import Supernet, SupernetConfig


@pytest.fixture(scope="module")
def nets() -> dict[str, Supernet]:
    torch.manual_seed(0)
    names = {"cross": "autonad", "entangled": "autonad-entangled", "classical": "autonad-classical"}
    return {mode: Supernet(SupernetConfig.load(name), 3) for mode, name in names.items()}


def _block(net: Supernet):
    return net.encoder.stages[1].blocks[2]


def test_cross_shares_step_one_and_projection_across_operator_types(nets):
    block = _block(nets["cross"])
    qkv, proj, _ = block.weights_for("transformer")
    for choice in ("conv3", "conv5", "mlp"):
        other_qkv, other_proj, _ = block.weights_for(choice)
        assert other_qkv.weight is qkv.weight and other_proj.weight is proj.weight
    assert block.weights_for("conv3")[2] is block.weights_for("conv5")[2]  # k=3 slices the k=5 bank
    assert block.weights_for("mlp")[2] is not block.weights_for("conv5")[2]


def test_entangled_shares_within_an_operator_type_only(nets):
    block = _block(nets["entangled"])
    conv3, conv5 = block.weights_for("conv3"), block.weights_for("conv5")
    assert conv3[0].weight is conv5[0].weight and conv3[1].weight is conv5[1].weight and conv3[2] is conv5[2]
    types = [block.weights_for(c)[0].weight for c in ("transformer", "conv3", "mlp")]
    assert len({id(w) for w in types}) == 3


def test_classical_shares_nothing_between_candidates(nets):
    block = _block(nets["classical"])
    choices = ("transformer", "conv3", "conv5", "mlp")
    for part in (0, 1):
        assert len({id(block.weights_for(c)[part].weight) for c in choices}) == 4
    assert block.weights_for("conv3")[2] is not block.weights_for("conv5")[2]
    assert block.weights_for("conv3")[2].shift.stored_kernel == 3


def test_decoder_edges_share_by_mode(nets):
    for mode, shared in (("cross", True), ("entangled", True), ("classical", False)):
        edge = nets[mode].decoder.laterals[0].conv
        banks = {edge.keys[op] for op in ("conv1x1", "conv3x3", "conv5x5", "dil3x3", "dwsep3x3")}
        assert (len(banks) == 1) == shared, mode


def test_parameter_counts_are_ordered_classical_entangled_cross(nets):
    count = {mode: sum(p.numel() for p in net.parameters()) for mode, net in nets.items()}
    assert count["classical"] > count["entangled"] > count["cross"]


def test_modes_give_identical_subnet_shapes(nets):
    """The mode changes which weights are shared, never the subnet itself."""
    arch = nets["cross"].space.smallest()
    shapes = {mode: [tuple(p.shape) for p in net.extract(arch).parameters()] for mode, net in nets.items()}
    assert shapes["cross"] == shapes["entangled"] == shapes["classical"]
