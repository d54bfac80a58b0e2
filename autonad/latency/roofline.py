"""Roofline estimates for devices nobody has measured yet (`provenance: roofline`).

Each component runs once on the `meta` device (shapes only, no arithmetic) under a dispatch
mode that sees every ATen kernel. A kernel costs

    max(FLOPs / peak FLOP/s, bytes moved / memory bandwidth) + one kernel launch

with FLOPs from torch's own formulas (`torch.utils.flop_counter`: matmuls, convolutions,
attention; other kernels one op per output element) and bytes = every tensor read and written
once (inputs, weights, outputs; views are free). It is a lower bound on what a real runtime
achieves (perfect overlap, peak clocks, no occupancy loss at batch 1): a ranking aid until
`autonad profile` is run on the device, and labelled as an estimate wherever it is used.
"""

from __future__ import annotations

import platform
from datetime import date

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from autonad.errors import AutoNADError
from autonad.latency.components import Component, ComponentFactory
from autonad.latency.table import Calibration, DeviceTables, Profile, RooflineSpec
from autonad.ui import progress


class KernelCost(TorchDispatchMode):
    """Accumulates roofline time (s) and kernel count over the ATen kernels it sees."""

    def __init__(self, spec: RooflineSpec):
        super().__init__()
        self.spec, self.seconds, self.kernels = spec, 0.0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view or func._overloadpacket in _FREE:
            return out
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        moved = sum(t.numel() * t.element_size() for t in tensors)
        formula = flop_registry.get(func._overloadpacket)
        flops = formula(*args, **kwargs, out_val=out) if formula else _numel(out)
        self.seconds += max(flops / (self.spec.peak_gflops * 1e9), moved / (self.spec.bandwidth_gbs * 1e9))
        self.seconds += self.spec.launch_us * 1e-6
        self.kernels += 1
        return out


_FREE = {torch.ops.aten.detach, torch.ops.aten.empty, torch.ops.aten.empty_strided, torch.ops.aten.lift_fresh}


def _numel(out) -> int:
    return sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))


def roofline_ms(component: Component, spec: RooflineSpec) -> float:
    module, inputs = component.build()
    module = module.to("meta")
    inputs = [x.to("meta") for x in inputs]
    mode = KernelCost(spec)
    with torch.inference_mode(), mode:
        module(*inputs)
    return mode.seconds * 1e3


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
        provenance="roofline",
        method=(
            "roofline estimate: per ATen kernel max(FLOPs / peak, bytes / bandwidth) + launch, summed per component "
            "(shapes only, no device run); a lower bound until measured with `autonad profile` on the device"
        ),
        hardware=spec.summary(tables.description),
        runtime={"torch": torch.__version__.split("+")[0], "python": platform.python_version(), "device": "meta"},
        date=date.today().isoformat(),
        classes=list(factory.classes),
        complete=True,
        calibration=Calibration(),
    )
    components = list(factory.components())
    with progress() as bar:
        for component in bar.track(components, description=f"roofline {factory.space.name} on {hw}"):
            profile.entries[component.key] = round(roofline_ms(component, spec), 5)
    return profile
