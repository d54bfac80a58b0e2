"""Roofline estimates for devices nobody has measured here (`provenance: roofline` / `estimate`).

Each component runs once on the `meta` device (shapes only, no arithmetic) under a dispatch
mode that sees every ATen kernel. A kernel of class c (`autonad.latency.kernels`) costs

    max(FLOPs / peak FLOP/s, bytes moved / memory bandwidth) / efficiency[c] + launch

with FLOPs from torch's own formulas (`torch.utils.flop_counter`: matmuls, convolutions,
attention; other kernels one op per output element) and bytes = every tensor read and written
once (inputs, weights, outputs; views are free). With every efficiency 1 and launch the bare
CUDA launch latency it is a lower bound (perfect overlap, peak clocks, no occupancy loss at
batch 1, no framework overhead): `provenance: roofline`. `fit_estimate` fits the efficiencies and
the per-kernel cost (launch plus the framework's dispatch, which dominates small networks in
eager PyTorch) on end-to-end measurements, which makes the table an `estimate` naming them.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from autonad.errors import AutoNADError
from autonad.latency.components import Component, ComponentFactory
from autonad.latency.kernels import KERNEL_CLASSES, kernel_class
from autonad.latency.table import Calibration, DeviceTables, Profile, RooflineSpec
from autonad.ui import progress


@dataclass
class KernelCounts:
    """What a network's kernels cost at the roofline, per kernel class: seconds at peak (before
    any efficiency) and kernel counts. `seconds(spec)` prices them on a device."""

    roof_s: Counter = field(default_factory=Counter)
    kernels: Counter = field(default_factory=Counter)

    def seconds(self, spec: RooflineSpec) -> float:
        compute = sum(t / spec.fraction(c) for c, t in self.roof_s.items())
        return compute + sum(self.kernels.values()) * spec.launch_us * 1e-6

    def ms(self, spec: RooflineSpec) -> float:
        return self.seconds(spec) * 1e3


class KernelCost(TorchDispatchMode):
    """Accumulates the roofline cost (`KernelCounts`) of the ATen kernels it sees."""

    def __init__(self, spec: RooflineSpec):
        super().__init__()
        self.spec, self.counts = spec, KernelCounts()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view or func._overloadpacket in _FREE:
            return out
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        moved = sum(t.numel() * t.element_size() for t in tensors)
        formula = flop_registry.get(func._overloadpacket)
        flops = formula(*args, **kwargs, out_val=out) if formula else _numel(out)
        c = kernel_class(func._overloadpacket.__name__, args)
        self.counts.roof_s[c] += max(flops / (self.spec.peak_gflops * 1e9), moved / (self.spec.bandwidth_gbs * 1e9))
        self.counts.kernels[c] += 1
        return out


_FREE = {torch.ops.aten.detach, torch.ops.aten.empty, torch.ops.aten.empty_strided, torch.ops.aten.lift_fresh,
         torch.ops.aten._unsafe_view}  # fmt: skip


def _numel(out) -> int:
    return sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))


def kernel_counts(module: nn.Module, inputs: Sequence[Tensor], spec: RooflineSpec) -> KernelCounts:
    """The roofline cost of one forward pass, per kernel class (on `meta`: shapes only)."""
    module, inputs = module.to("meta").eval(), [x.to("meta") for x in inputs]
    mode = KernelCost(spec)
    with torch.no_grad(), mode:  # not inference_mode: it keeps conv2d/linear composite, unseen by the FLOP formulas
        module(*inputs)
    return mode.counts


def roofline_ms(component: Component, spec: RooflineSpec) -> float:
    return kernel_counts(*component.build(), spec).ms(spec)


def fit_estimate(
    counts: Sequence[KernelCounts],
    measured_ms: Sequence[float],
    spec: RooflineSpec,
    sources: Sequence[str],
    per_class: bool = True,
    pull: float = 0.05,
) -> RooflineSpec:
    """`spec` with the achieved fractions (<= 1: the roofline bounds what a kernel can reach) and
    per-kernel cost that best explain `measured_ms` (squared relative error, non-negative least
    squares on each fraction's excess cost over the roofline): one fraction for every class, then,
    with `per_class` and enough measurements, one per class pulled towards the shared one by a
    ridge term (classes nearly collinear with the kernel count would otherwise wander)."""
    from scipy.optimize import nnls

    y = np.asarray(measured_ms, dtype=float)
    if len(y) < 2 or len(y) != len(counts):
        raise AutoNADError(f"fitting an estimate needs >= 2 measured networks with their kernel counts (got {len(y)})")
    roof = np.array([[c.roof_s.get(k, 0.0) * 1e3 for k in KERNEL_CLASSES] for c in counts])
    launches = np.array([sum(c.kernels.values()) for c in counts], dtype=float)
    rest = 1.0 - roof.sum(1) / y  # what the roofline leaves unexplained, relative to each measurement
    (excess, launch_ms), _ = nnls(np.column_stack([roof.sum(1), launches]) / y[:, None], rest)
    excesses = dict.fromkeys(KERNEL_CLASSES, excess)
    present = [i for i, _ in enumerate(KERNEL_CLASSES) if roof[:, i].any()]
    if per_class and len(y) > 2 * (len(present) + 1):
        x = np.column_stack([roof[:, present], launches]) / y[:, None]
        ridge = np.sqrt(pull) * np.eye(len(present), len(present) + 1)
        coef, _ = nnls(np.vstack([x, ridge]), np.concatenate([rest, np.full(len(present), np.sqrt(pull) * excess)]))
        excesses.update({KERNEL_CLASSES[i]: c for i, c in zip(present, coef[:-1])})
        launch_ms = coef[-1]
    efficiency = {k: round(float(1.0 / (1.0 + v)), 5) for k, v in excesses.items()}
    return replace(spec, efficiency=efficiency, launch_us=round(float(launch_ms) * 1e3, 3), calibrated_on=list(sources))


def roofline_spec(tables: DeviceTables) -> RooflineSpec:
    """A device table's peak figures, or one line saying how to give them."""
    if tables.roofline is None:
        raise AutoNADError(
            f"latency table '{tables.device}' has no published peak figures for a roofline estimate: give them with "
            "`autonad profile --roofline --peak-gflops G --bandwidth-gbs B` (they are kept in the table's header)"
        )
    return tables.roofline


def roofline_profile(factory: ComponentFactory, tables: DeviceTables) -> Profile:
    """The roofline estimate of every component of the factory's space on the table's device."""
    spec, hw = roofline_spec(tables), tables.device
    profile = Profile(
        search_space=factory.space.name,
        input_size=list(factory.input_size),
        batch=factory.batch,
        provenance="estimate" if spec.calibrated else "roofline",
        method=_method(spec),
        hardware=spec.summary(tables.description),
        runtime={"torch": torch.__version__.split("+")[0], "python": platform.python_version(), "device": "meta"},
        date=date.today().isoformat(),
        classes=list(factory.classes),
        complete=True,
        calibration=Calibration(),
    )
    components = list(factory.components())
    with progress() as bar:
        for component in bar.track(components, description=f"{profile.provenance} {factory.space.name} on {hw}"):
            profile.entries[component.key] = round(roofline_ms(component, spec), 5)
    return profile


def _method(spec: RooflineSpec) -> str:
    if spec.calibrated:
        return (
            "calibrated roofline estimate: per ATen kernel max(FLOPs / peak, bytes / bandwidth) / achieved fraction "
            "of its kernel class + per-kernel cost, fitted on end-to-end measurements, summed per component (shapes "
            "only, no device run); an estimate until measured with `autonad profile` on the device"
        )
    return (
        "roofline estimate: per ATen kernel max(FLOPs / peak, bytes / bandwidth) + launch, summed per component "
        "(shapes only, no device run); a lower bound until measured with `autonad profile` on the device"
    )
