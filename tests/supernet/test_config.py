"""Supernet definitions load from YAML with clear errors; bad archs are rejected."""

from __future__ import annotations

import dataclasses

import pytest

from autonad import resources
from autonad.config import to_mapping
from autonad.errors import AutoNADError
from autonad.space import HeadsArch, SearchSpace
from autonad.supernet import Supernet, SupernetConfig
from autonad.supernet.config import same_config, saved_config


@pytest.mark.parametrize("name", resources.list_shipped("supernets"))
def test_shipped_supernets_load(name):
    config = SupernetConfig.load(name)
    assert config.name == name
    SearchSpace.load(config.search_space)


def test_shipped_supernets_include_the_three_modes():
    modes = {SupernetConfig.load(n).weight_sharing for n in ("autonad", "autonad-entangled", "autonad-classical")}
    assert modes == {"cross", "entangled", "classical"}
    assert SupernetConfig.load("tiny").search_space == "tiny"


def _write(tmp_path, text: str):
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return path


def test_unknown_key_is_named(tmp_path):
    path = _write(tmp_path, "name: x\nsearch_space: tiny\nweight_shareing: cross\n")
    with pytest.raises(AutoNADError, match="weight_shareing"):
        SupernetConfig.load(path)


def test_unknown_mode_lists_the_modes(tmp_path):
    path = _write(tmp_path, "name: x\nsearch_space: tiny\nweight_sharing: partial\n")
    with pytest.raises(AutoNADError, match="'cross', 'entangled', 'classical'"):
        SupernetConfig.load(path)


def test_bad_values_are_rejected(tmp_path):
    with pytest.raises(AutoNADError, match="drop_path"):
        SupernetConfig.load(_write(tmp_path, "name: x\nsearch_space: tiny\ndrop_path: 1.5\n"))
    with pytest.raises(AutoNADError, match="unknown supernet"):
        SupernetConfig.load("no-such-supernet")


def test_group_norm_must_divide_widths():
    config = SupernetConfig.load("tiny")
    config = dataclasses.replace(config, decoder=dataclasses.replace(config.decoder, gn_channels_per_group=7))
    with pytest.raises(AutoNADError, match="gn_channels_per_group 7"):
        Supernet(config, 3)


def test_set_arch_validates_against_the_space(tiny_net):
    autonad_arch = SearchSpace.load("autonad").smallest()
    with pytest.raises(AutoNADError, match="not in search space 'tiny'"):
        tiny_net.set_arch(autonad_arch)


def test_cap_arch_needs_a_cap_head():
    config = SupernetConfig.load("tiny")
    net = Supernet(dataclasses.replace(config, heads=dataclasses.replace(config.heads, cap=False)), 3)
    assert net.cap_head is None
    with pytest.raises(AutoNADError, match="CaP"):
        net.set_arch(net.space.smallest(heads=HeadsArch(cap=True)))


def test_group_norm_must_divide_detail_widths():
    config = SupernetConfig.load("tiny")  # gn_channels_per_group 8
    tiny = SearchSpace.load("tiny")
    space = dataclasses.replace(tiny, decoder=dataclasses.replace(tiny.decoder, detail=[0, 12]))
    with pytest.raises(AutoNADError, match=r"gn_channels_per_group 8 .*detail width; 12 is not divisible"):
        Supernet(config, 3, space)
    Supernet(config, 3, dataclasses.replace(space, decoder=dataclasses.replace(space.decoder, detail=[0, 16])))


def test_a_detail_arch_needs_a_space_with_that_detail(tiny_net, with_detail):
    with pytest.raises(AutoNADError, match=r"decoder\.detail: 16 is not in search space 'tiny'"):
        tiny_net.set_arch(with_detail(tiny_net.space.smallest(), 16))


def test_a_definition_saved_while_the_stem_was_a_supernet_setting_still_loads():
    config = SupernetConfig.load("autonad")
    saved = {**to_mapping(config), "stem": "patch"}  # checkpoints and exports of the previous version
    assert saved_config(saved, "ckpt") == config and same_config(saved, config)
    with pytest.raises(AutoNADError, match=r"ckpt: has `stem: conv`, a supernet setting of an older version"):
        saved_config({**saved, "stem": "conv"}, "ckpt")
