"""Predicted latency of any arch of the space: its components' table entries, calibrated.

    ms(arch) = constant + sum over components c of scale[kind(c)] * entry[c]

The per-kind scales and the constant are fitted (non-negative least squares on relative error)
to end-to-end timings of whole extracted subnets: components timed alone miss what a network
shares (caches warm from the previous layer, no per-call set-up) and the network's own glue
(stage hand-over, output dict). Roofline tables have no end-to-end timings: scales 1, constant 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autonad.errors import AutoNADError
from autonad.latency.components import arch_keys, calibration_kinds, kind_of
from autonad.latency.runtimes import runtime_suffix
from autonad.latency.table import Calibration, Profile
from autonad.space import Arch, SearchSpace


@dataclass
class LatencyPredictor:
    device: str
    profile: Profile
    space: SearchSpace
    classes: int

    def __post_init__(self):
        if self.profile.search_space != self.space.name:
            raise AutoNADError(
                f"latency table '{self.device}' was made for search space '{self.profile.search_space}', "
                f"not '{self.space.name}'"
            )
        if self.classes not in self.profile.classes:
            raise AutoNADError(
                f"latency table '{self.device}' ({self.profile.signature}) has head entries for "
                f"{self.profile.classes} classes, not {self.classes}; profile with --classes {self.classes}"
            )

    @property
    def provenance(self) -> str:
        return self.profile.provenance

    @property
    def runtime(self) -> str:
        """The inference runtime the table's figures are for (`autonad.latency.runtimes`)."""
        return self.profile.runtime_name

    def metadata(self, latency_ms: float) -> dict[str, Any]:
        """A model's predicted latency on this device and where the figure comes from, as the keys of
        its model.json (a subnet's `predict`, an ensemble's its members' sum)."""
        return {"hw": self.device, "latency_ms": latency_ms, "latency_provenance": self.provenance,
                "latency_runtime": self.runtime}  # fmt: skip

    @property
    def label(self) -> str:
        """How to name the figure wherever it is shown: device, runtime (when not eager torch) and provenance."""
        notes = {"roofline": " (estimate from peak FLOP/s and bandwidth)",
                 "estimate": " (roofline calibrated on published or measured timings)"}  # fmt: skip
        note = notes.get(self.provenance, "")
        return f"{self.device}{runtime_suffix(self.runtime)}, {self.provenance}{note}"

    def kind_sums(self, arch: Arch) -> Counter:
        """Raw table ms per component kind for `arch`."""
        sums: Counter = Counter()
        for key in arch_keys(self.space, arch, self.classes):
            try:
                sums[kind_of(key)] += self.profile.entries[key]
            except KeyError:
                raise AutoNADError(
                    f"latency table '{self.device}' ({self.profile.signature}) has no entry '{key}': "
                    "it is incomplete or was measured for another search space"
                ) from None
        return sums

    def predict(self, arch: Arch) -> float:
        return apply_calibration(self.profile.calibration, self.kind_sums(arch))

    def breakdown(self, arch: Arch) -> dict[str, float]:
        """Calibrated ms per component kind (plus the constant); sums to `predict(arch)`."""
        cal = self.profile.calibration
        out = {kind: cal.scales.get(kind, 1.0) * ms for kind, ms in self.kind_sums(arch).items()}
        out["constant"] = cal.constant_ms
        return out


def apply_calibration(calibration: Calibration, sums: Counter) -> float:
    return calibration.constant_ms + sum(calibration.scales.get(k, 1.0) * ms for k, ms in sums.items())


def fit_calibration(sums: Sequence[Counter], measured: Sequence[float], pull: float = 0.05) -> Calibration:
    """Per-kind scales and a constant minimising the squared *relative* error (NNLS, so no
    negative costs), with a ridge term `pull * sum (scale - 1)^2`: kinds that vary little across
    subnets (embeddings, head) are nearly collinear with the constant, and without it their
    scales wander to 0 or 3. Kinds absent from every arch keep scale 1; a kind outside
    `calibration_kinds()` (an operator registered after the table was written) is fitted too."""
    from scipy.optimize import nnls

    present = {k for s in sums for k, v in s.items() if v > 0}
    known = calibration_kinds()
    kinds = [k for k in known if k in present] + sorted(present - set(known))
    y = np.asarray(measured, dtype=float)
    x = np.array([[s.get(k, 0.0) for k in kinds] + [1.0] for s in sums], dtype=float) / y[:, None]
    ridge = np.sqrt(pull) * np.eye(len(kinds), len(kinds) + 1)
    coef, _ = nnls(np.vstack([x, ridge]), np.concatenate([np.ones_like(y), np.full(len(kinds), np.sqrt(pull))]))
    calibration = Calibration(
        constant_ms=round(float(coef[-1]), 4),
        scales={k: round(float(c), 4) for k, c in zip(kinds, coef[:-1])},
        fitted_on=len(y),
    )
    predicted = np.array([apply_calibration(calibration, s) for s in sums])
    calibration.mape = round(float(np.mean(np.abs(predicted - y) / y)), 4)
    return calibration
