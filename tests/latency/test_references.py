"""Published networks that calibrate an estimate (`autonad.latency.references`)."""

from __future__ import annotations

import pytest
import torch

from autonad.errors import AutoNADError
from autonad.latency.references import PUBLISHED_NETWORKS, TABLE8, calibrate_on_published, published_for
from autonad.latency.table import RooflineSpec, load_tables


@pytest.mark.parametrize("net", PUBLISHED_NETWORKS, ids=lambda n: n.name)
def test_a_rebuild_has_the_published_parameter_count(net):
    model = net.build(2)
    params = sum(t.numel() for t in model.parameters()) / 1e6
    assert params == pytest.approx(net.params_m, rel=0.01)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_calibration_on_published_timings_names_them():
    base = load_tables("jetson").roofline
    spec = calibrate_on_published(RooflineSpec(base.peak_gflops, base.bandwidth_gbs), "jetson-xavier-nx")
    assert spec.calibrated and all(TABLE8 in s for s in spec.calibrated_on) and len(spec.calibrated_on) == 2
    assert 0 < min(spec.efficiency.values()) <= 1 and spec.launch_us > 5  # eager dispatch costs more than a launch
    with pytest.raises(AutoNADError, match="no published timings on 'tpu9'.*rtx3090"):
        published_for("tpu9")
