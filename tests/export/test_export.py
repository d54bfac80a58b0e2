import dataclasses
import json
import re

import pytest
import torch

from autonad.errors import AutoNADError
from autonad.export import FORMATS, export_subnet, load_exported
from autonad.space import HeadsArch, SearchSpace
from autonad.supernet import Supernet, SupernetConfig


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.load("tiny"), num_classes=3).eval()
    arch = net.space.smallest(heads=HeadsArch(cap=True, classes=True))
    out = tmp_path_factory.mktemp("export")
    paths = export_subnet(net, arch, out, (48, 64), {"dataset": "x", "latency_ms": 1.5}, FORMATS)
    return net, arch, paths


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_matches_the_supernet_and_keeps_metadata(exported, fmt):
    net, arch, paths = exported
    model, meta = load_exported(paths[fmt])
    assert meta["arch_hash"] == arch.hash and meta["dataset"] == "x" and meta["input_size"] == [48, 64]
    x = torch.randn(2, 3, 48, 64)
    net.set_arch(arch)
    with torch.inference_mode():
        want, got = net(x), model(x)
    assert set(got) == {"seg", "cap", "cls"}
    for key in want:
        assert torch.allclose(want[key], got[key], atol=1e-4), key


def test_metadata_file_is_written(exported):
    _, arch, paths = exported
    meta = json.loads(paths["metadata"].read_text())
    assert meta["arch_hash"] == arch.hash and meta["outputs"] == "seg,cap,cls" and meta["latency_ms"] == 1.5


def test_unknown_format_is_one_line(exported, tmp_path):
    net, arch, _ = exported
    with pytest.raises(AutoNADError, match="unknown export format 'tflite'"):
        export_subnet(net, arch, tmp_path, (48, 64), {}, ["tflite"])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("model.ts", b"not a model", "not a readable TorchScript model"),
        ("model.onnx", b"not a model", "not a readable ONNX model"),
        ("model.pt", b"not a model", "not a readable checkpoint"),
        ("model.h5", b"", "not an exported model (expected model.ts, model.onnx or model.pt)"),
    ],
)
def test_unreadable_or_foreign_files_are_one_line(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(AutoNADError, match=re.escape(message)):
        load_exported(tmp_path / name)


def test_a_checkpoint_of_another_kind_is_refused(tmp_path):
    from autonad.train.checkpoint import save_atomic

    save_atomic({"format": "autonad-supernet/1", "model": {}}, tmp_path / "model.pt")
    with pytest.raises(AutoNADError, match="is a 'autonad-supernet/1' checkpoint, expected 'autonad-model/1'"):
        load_exported(tmp_path / "model.pt")


@pytest.fixture(scope="module")
def detail_net():
    tiny = SearchSpace.load("tiny")
    space = dataclasses.replace(tiny, decoder=dataclasses.replace(tiny.decoder, detail=[0, 8, 16]))
    torch.manual_seed(0)
    return Supernet(SupernetConfig.load("tiny"), num_classes=3, space=space).eval()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "state-dict"])
def test_a_detail_arch_exports_and_matches_the_supernet(detail_net, tmp_path, fmt):
    arch = detail_net.space.smallest(heads=HeadsArch(cap=True))
    arch = dataclasses.replace(arch, decoder=dataclasses.replace(arch.decoder, detail=16))
    paths = export_subnet(detail_net, arch, tmp_path, (48, 64), {}, [fmt])
    model, meta = load_exported(paths[fmt])
    assert json.loads(meta["arch"])["decoder"]["detail"] == 16
    # the state dict rebuilds the network from the recorded space, not from the shipped 'tiny' of that name
    assert json.loads(meta["search_space_def"])["decoder"]["detail"] == [0, 8, 16]
    x = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    detail_net.set_arch(arch)
    with torch.inference_mode():
        want, got = detail_net(x), model(x)
    for key in want:
        assert torch.allclose(want[key], got[key], atol=1e-4), key
