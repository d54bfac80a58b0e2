"""Extracted subnets script with TorchScript and export to ONNX (checked with onnxruntime)."""

from __future__ import annotations

import io
import random
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from autonad.space import Arch, HeadsArch

# torch 2.13 deprecates torch.jit and the TorchScript-based ONNX exporter; both still work and
# are what this checks (the torch.export-based exporter is tested too, below).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _archs(space, n: int, seed: int) -> list[Arch]:
    rng = random.Random(seed)
    extremes = [space.largest(heads=HeadsArch(cap=True)), space.smallest()]
    return extremes + [space.sample(rng, heads=HeadsArch(cap=i % 2 == 0)) for i in range(n)]


def _onnx_outputs(model: torch.nn.Module, x: torch.Tensor, names: list[str], dynamo: bool) -> list[np.ndarray]:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer warnings
        if dynamo:
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, verbose=False)
            program.save(buffer)
        else:
            torch.onnx.export(
                model, (x,), buffer, dynamo=False, opset_version=17, input_names=["image"], output_names=names
            )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})


def _check_exports(net, arch: Arch, x: torch.Tensor, tmp_path) -> None:
    model = net.extract(arch).eval()
    with torch.no_grad():
        reference = model(x)
        scripted = torch.jit.script(model)
        path = tmp_path / "model.pt"
        torch.jit.save(scripted, str(path))
        loaded = torch.jit.load(str(path))
        for out in (scripted(x), loaded(x)):
            assert out.keys() == reference.keys()
            for key in reference:
                assert torch.allclose(out[key], reference[key], rtol=0, atol=1e-5), key
    assert Arch.from_dict(__import__("json").loads(loaded.metadata["arch"])) == arch
    names = list(reference)
    for key, value in zip(names, _onnx_outputs(model, x, names, dynamo=False)):
        assert np.abs(value - reference[key].numpy()).max() <= 1e-4, key


@pytest.mark.parametrize("index", range(7))
def test_autonad_subnets_script_and_export(autonad_net, index, tmp_path):
    arch = _archs(autonad_net.space, 5, seed=11)[index]
    _check_exports(
        autonad_net, arch, torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(index)), tmp_path
    )


@pytest.mark.parametrize("index", range(4))
def test_tiny_subnets_script_and_export(tiny_net, index, tmp_path):
    arch = _archs(tiny_net.space, 2, seed=12)[index]
    _check_exports(tiny_net, arch, torch.randn(1, 3, 72, 40, generator=torch.Generator().manual_seed(index)), tmp_path)


def test_torch_export_based_onnx_exporter(tiny_net):
    """The default (torch.export-based) ONNX exporter, which needs onnxscript."""
    pytest.importorskip("onnxscript")
    arch = _archs(tiny_net.space, 1, seed=13)[-1]
    model = tiny_net.extract(arch).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(x)
    names = list(reference)
    for key, value in zip(names, _onnx_outputs(model, x, names, dynamo=True)):
        assert np.abs(value - reference[key].numpy()).max() <= 1e-4, key


@pytest.mark.parametrize("detail", [8, 16])
def test_detail_subnets_script_and_export(detail_net, with_detail, detail, tmp_path):
    for arch in _archs(detail_net.space, 1, seed=14 + detail)[1:]:  # the smallest and a random arch
        x = torch.randn(1, 3, 72, 40, generator=torch.Generator().manual_seed(detail))
        _check_exports(detail_net, with_detail(arch, detail), x, tmp_path)
