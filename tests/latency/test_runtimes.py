import pytest
import torch
from torch import nn

from autonad.errors import AutoNADError
from autonad.latency import runtimes
from autonad.latency.measure import TimingConfig, time_module


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x, skip):
        return torch.relu(self.conv(x)) + skip


@pytest.mark.parametrize("runtime", runtimes.RUNTIMES)
def test_each_runtime_runs_the_module_and_gives_the_same_output(runtime):
    torch.manual_seed(0)
    module, inputs = TwoInputs().eval(), [torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)]
    call = runtimes.prepare(runtime, module, inputs, torch.device("cpu"), threads=1)
    with torch.inference_mode():
        out = call()
        want = module(*inputs)
    got = torch.as_tensor(out[0]) if isinstance(out, list) else out
    assert torch.allclose(got, want, atol=1e-5)
    assert time_module(module, inputs, torch.device("cpu"), TimingConfig(repeats=3, runtime=runtime)) > 0


def test_an_unused_input_is_not_fed_to_onnxruntime():
    class IgnoresSkip(nn.Module):
        def forward(self, x, skip):
            return x * 2

    call = runtimes.prepare("onnxruntime", IgnoresSkip(), [torch.ones(1, 2), torch.ones(1, 2)], torch.device("cpu"), 1)
    assert call()[0].tolist() == [[2.0, 2.0]]


def test_unknown_runtime_and_unexportable_modules_give_one_line():
    with pytest.raises(AutoNADError, match=r"unknown runtime 'tflite' \(runtimes: torch, onnxruntime\)"):
        runtimes.check_runtime("tflite")

    class NotExportable(nn.Module):
        def forward(self, x):
            return torch.linalg.eig(x)[0].real  # no ONNX symbolic

    with pytest.raises(AutoNADError, match="cannot export component 'x' to ONNX") as err:
        runtimes.prepare("onnxruntime", NotExportable(), [torch.randn(2, 2)], torch.device("cpu"), 1, "component 'x'")
    assert "\n" not in str(err.value)


def test_onnxruntime_refuses_to_time_on_a_gpu_and_an_unknown_runtime_in_prepare():
    with pytest.raises(AutoNADError, match="timing on cuda is not supported yet"):
        runtimes.prepare("onnxruntime", nn.Identity(), [torch.ones(1)], torch.device("cuda"), 1)
    with pytest.raises(AutoNADError, match="unknown runtime 'tvm'"):
        runtimes.prepare("tvm", nn.Identity(), [torch.ones(1)], torch.device("cpu"), 1)
