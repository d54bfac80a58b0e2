"""`autonad latency validate`: predicted vs end-to-end measured latency of random subnets.

The subnets are drawn with their own seed (not the calibration's), extracted as plain networks
and timed whole, the way they will run; the summary gives the share within +-10%, Kendall tau of
the two rankings and the MAPE (SPEC section 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autonad.errors import AutoNADError
from autonad.latency.measure import TimingConfig, random_archs, summary, time_subnets
from autonad.latency.predictor import LatencyPredictor
from autonad.space import Arch


@dataclass
class Validation:
    archs: list[Arch]
    predicted: list[float]
    measured: list[float]

    @property
    def summary(self) -> dict[str, float]:
        return summary(self.predicted, self.measured)

    def rows(self) -> list[dict]:
        return [
            {"arch_hash": a.hash, "arch": a.short(), "predicted_ms": round(p, 4), "measured_ms": round(m, 4),
             "error": round((p - m) / m, 4)}
            for a, p, m in zip(self.archs, self.predicted, self.measured)
        ]  # fmt: skip


def validate(predictor: LatencyPredictor, n: int, seed: int, device: torch.device) -> Validation:
    """Time `n` random subnets of the predictor's space end to end, under the table's own settings."""
    archs = random_archs(predictor.space, n, seed)
    return Validation(archs, [predictor.predict(a) for a in archs], measure_archs(predictor, archs, device))


_ESTIMATES = {"roofline": "a roofline estimate", "estimate": "a calibrated roofline estimate"}


def measure_archs(predictor: LatencyPredictor, archs: list[Arch], device: torch.device) -> list[float]:
    """End-to-end ms of extracted subnets here, timed the way the table was made (threads, probe)."""
    profile = predictor.profile
    if profile.provenance != "measured":
        raise AutoNADError(
            f"latency table '{predictor.device}' ({profile.signature}) is {_ESTIMATES[profile.provenance]}; "
            "validation compares against timings on the device itself: run `autonad profile` there first"
        )
    threads = int(profile.runtime.get("threads", torch.get_num_threads()))
    timing = TimingConfig(threads=threads, repeats=21, probe_ms=profile.runtime.get("probe_ms"),
                          runtime=profile.runtime_name)  # fmt: skip
    image = torch.randn(profile.batch, predictor.space.in_channels, *profile.input_size)
    on = "" if profile.runtime_name == "torch" else f" with {profile.runtime_name}"
    label = f"timing {len(archs)} subnet(s) on {predictor.device}{on}"
    return time_subnets(predictor.space, archs, image, predictor.classes, device, timing, description=label)
