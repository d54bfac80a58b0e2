"""The roofline estimate and its calibration (`autonad.latency.roofline`, `autonad.latency.kernels`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autonad.errors import AutoNADError
from autonad.latency.kernels import KERNEL_CLASSES
from autonad.latency.roofline import KernelCounts, fit_estimate, kernel_counts
from autonad.latency.table import DeviceTables, RooflineSpec

SPEC = RooflineSpec(peak_gflops=100.0, bandwidth_gbs=1e6, launch_us=0.0)  # bandwidth so high: compute-bound


def test_a_convolution_is_priced_by_its_flops():
    """Regression: under inference_mode conv2d and linear reached the counter undecomposed, and
    their FLOPs were taken as one per output element."""
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    counts = kernel_counts(conv, [torch.zeros(1, 16, 20, 20)], SPEC)
    flops = 2 * 16 * 32 * 9 * 20 * 20
    assert counts.kernels == {"conv": 1}
    assert counts.roof_s["conv"] == pytest.approx(flops / 100e9)
    linear = kernel_counts(nn.Linear(64, 128), [torch.zeros(10, 64)], SPEC)
    assert linear.kernels == {"matmul": 1} and linear.roof_s["matmul"] == pytest.approx(2 * 10 * 64 * 128 / 100e9)


@pytest.mark.parametrize(
    ("module", "shape", "kind"),
    [
        (nn.Conv2d(8, 8, 3, groups=8), (1, 8, 9, 9), "dwconv"),
        (nn.Conv2d(8, 8, 3, groups=2), (1, 8, 9, 9), "dwconv"),
        (nn.Conv2d(8, 4, 1), (1, 8, 9, 9), "conv"),
        (nn.LayerNorm(8), (2, 5, 8), "norm"),
        (nn.GroupNorm(2, 8), (1, 8, 4, 4), "norm"),
        (nn.Softmax(-1), (2, 8), "norm"),
        (nn.GELU(), (2, 8), "elementwise"),
    ],
)
def test_kernels_fall_in_their_class(module, shape, kind):
    counts = kernel_counts(module, [torch.zeros(shape)], SPEC)
    assert set(counts.kernels) == {kind}


def test_attention_counts_as_matmul():
    q = torch.zeros(1, 2, 16, 8)
    attention = type(
        "A", (nn.Module,), {"forward": lambda self, x: nn.functional.scaled_dot_product_attention(x, x, x)}
    )
    counts = kernel_counts(attention(), [q], SPEC)
    assert counts.kernels["matmul"] >= 1


def _networks() -> list[KernelCounts]:
    """Networks with different mixes of kernel classes (known roofline seconds and kernel counts)."""
    out = []
    for i in range(14):
        roof = {k: 1e-3 * ((i * (j + 3)) % 7 + 1) for j, k in enumerate(KERNEL_CLASSES)}
        out.append(KernelCounts(roof_s=dict(roof), kernels={"conv": 20 + 13 * (i % 5), "elementwise": 30 + 7 * i}))
    return out


def test_the_fit_recovers_the_fractions_and_the_per_kernel_cost():
    fractions = {"conv": 0.5, "dwconv": 0.1, "matmul": 0.4, "norm": 0.25, "elementwise": 0.8}
    truth = RooflineSpec(100.0, 50.0, launch_us=12.0, efficiency=fractions)
    nets = _networks()
    fitted = fit_estimate(nets, [n.ms(truth) for n in nets], RooflineSpec(100.0, 50.0), ["synthetic"], pull=1e-6)
    for k, v in truth.efficiency.items():
        assert fitted.efficiency[k] == pytest.approx(v, rel=0.02)
    assert fitted.launch_us == pytest.approx(12.0, rel=0.02)
    assert fitted.calibrated and fitted.calibrated_on == ["synthetic"]
    shared = fit_estimate(nets[:2], [n.ms(truth) for n in nets[:2]], RooflineSpec(100.0, 50.0), ["two"])
    assert len(set(shared.efficiency.values())) == 1  # two networks: one fraction for every class


def test_no_fraction_exceeds_the_roofline():
    nets = _networks()
    fitted = fit_estimate(nets, [0.5 * n.ms(SPEC) for n in nets], SPEC, ["too fast"])
    assert all(v == 1.0 for v in fitted.efficiency.values()) and fitted.launch_us == 0.0
    with pytest.raises(AutoNADError, match=">= 2 measured networks"):
        fit_estimate(nets[:1], [1.0], SPEC, ["one"])


def test_a_calibrated_spec_round_trips_and_bad_fractions_are_refused(tmp_path):
    spec = RooflineSpec(800.0, 50.0, 20.0, {"conv": 0.5}, ["somebody's timing: 10 ms"])
    DeviceTables("d", roofline=spec).write(tmp_path / "d.yaml")
    assert DeviceTables.read(tmp_path / "d.yaml").roofline == spec
    assert "achieved fraction conv 0.5; calibrated on somebody's timing" in spec.summary("a GPU")
    with pytest.raises(ValueError, match="unknown kernel class"):
        RooflineSpec(800.0, 50.0, efficiency={"gemm": 0.5})
    with pytest.raises(ValueError, match="must be > 0"):
        RooflineSpec(800.0, 50.0, efficiency={"conv": 0.0})
