"""Timing on the machine we run on: components for a table, whole subnets for calibration.

Timing is done one way everywhere (`autonad.timing`: warm-up, device sync, median of repeats)
under a fixed torch thread count. Tiny components are timed as loops of several calls per
sample so each sample lasts at least `min_sample_ms`, well above timer and scheduler noise.

Drift compensation: every sample is a ratio to a fixed probe workload timed right before and
after it (`median_relative`), converted to ms with the probe's time when the table was made
(`probe_ms`, stored in the table). On a dedicated device the ratio changes nothing; on a shared
machine it removes the slow-fast swings that otherwise dominate the error.
"""

from __future__ import annotations

import contextlib
import functools
import random
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autonad.latency import runtimes
from autonad.latency.components import Component
from autonad.space import Arch, SearchSpace
from autonad.timing import elapsed_ms, median_ms, median_relative, synchronize
from autonad.ui import progress


@dataclass(frozen=True)
class TimingConfig:
    threads: int = 1  # a fixed count: on a shared 2-core machine 2 threads timed 2-3x noisier
    warmup: int = 5
    repeats: int = 15
    min_sample_ms: float = 2.0  # loop small modules so a timed sample lasts at least this long
    probe_ms: float | None = None  # the probe's time when the table was made; None: no drift compensation
    runtime: str = "torch"  # what runs each call (`autonad.latency.runtimes`): eager torch or onnxruntime


class Probe(nn.Module):
    """The fixed reference workload (conv, GELU, token MLP; ~2 ms on one core), same weights everywhere."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32, 128), nn.Linear(128, 32)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=gen) * 0.05
        self.register_buffer("x", torch.randn(1, 32, 48, 48, generator=gen))

    def forward(self) -> Tensor:
        y = nn.functional.gelu(self.conv(self.x)).flatten(2).transpose(1, 2)
        return self.fc2(nn.functional.gelu(self.fc1(y)))


@functools.cache
def probe_on(device: torch.device) -> Probe:
    """One probe per device: every timing compares against the same module and weights."""
    return Probe().to(device).eval()


def probe_reference_ms(device: torch.device, timing: TimingConfig) -> float:
    """The probe's median time now (stored in a table as `probe_ms`)."""
    probe = probe_on(device)
    with torch.inference_mode():
        return median_ms(probe, device, timing.warmup * 4, timing.repeats * 4)


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_module(
    module: nn.Module, inputs: Sequence[Tensor], device: torch.device, timing: TimingConfig, what: str = "module"
) -> float:
    """Median ms of one `module(*inputs)` call on the timing's runtime (inference mode, device synchronised)."""
    call = runtimes.prepare(timing.runtime, module, inputs, device, timing.threads, what)
    with torch.inference_mode():
        once = _single_call_ms(call, device)
        loops = max(1, min(100, int(timing.min_sample_ms / max(once, 1e-3))))

        def run() -> None:
            for _ in range(loops):
                call()

        if timing.probe_ms is None:
            return median_ms(run, device, timing.warmup, timing.repeats) / loops
        ratio = median_relative(run, probe_on(device), device, timing.warmup, timing.repeats)
        return ratio * timing.probe_ms / loops


def _single_call_ms(call: Callable[[], object], device: torch.device) -> float:
    call()  # first call: allocations, lazy init
    synchronize(device)
    return elapsed_ms(call, device)


def time_component(component: Component, device: torch.device, timing: TimingConfig) -> float:
    module, inputs = component.build()
    return time_module(module, inputs, device, timing, f"component '{component.key}'")


def time_network(model: nn.Module, image: Tensor, device: torch.device, timing: TimingConfig) -> float:
    """End-to-end median ms of an extracted subnet on one input batch."""
    return time_module(model, [image], device, timing)


def time_subnets(
    space: SearchSpace,
    archs: Sequence[Arch],
    image: Tensor,
    classes: int,
    device: torch.device,
    timing: TimingConfig,
    rounds: int = 3,
    description: str = "timing subnets",
) -> list[float]:
    """End-to-end ms of each arch's extracted subnet (see `time_round_robin`)."""
    from autonad.latency.components import profiling_supernet

    net = profiling_supernet(space, classes)
    builders = [functools.partial(net.extract, arch) for arch in archs]
    return time_round_robin(builders, image, device, timing, rounds, description)


def time_round_robin(
    builders: Sequence[Callable[[], nn.Module]],
    image: Tensor,
    device: torch.device,
    timing: TimingConfig,
    rounds: int = 3,
    description: str = "timing networks",
) -> list[float]:
    """End-to-end ms of each network: `rounds` round-robin passes over all of them, median per
    network, so a slow spell of the machine costs one pass of every network instead of every pass
    of a few. Networks are built when timed, so only one is held at a time."""
    samples: list[list[float]] = [[] for _ in builders]
    with fixed_threads(timing.threads), progress() as bar:
        task = bar.add_task(description, total=rounds * len(builders))
        for _ in range(rounds):
            for i, build in enumerate(builders):
                samples[i].append(time_network(build(), image, device, timing))
                bar.advance(task)
    return [statistics.median(s) for s in samples]


def random_archs(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """`n` distinct archs drawn uniformly (the validation and calibration sets)."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        arch = space.sample(rng)
        if arch.hash not in seen:
            seen.add(arch.hash)
            out.append(arch)
    return out


def relative_errors(predicted: Sequence[float], measured: Sequence[float]) -> list[float]:
    return [(p - m) / m for p, m in zip(predicted, measured)]


def summary(predicted: Sequence[float], measured: Sequence[float], tolerance: float = 0.10) -> dict[str, float]:
    """Share within +-tolerance, Kendall tau of the rankings, MAPE and the worst error."""
    from scipy.stats import kendalltau

    errors = relative_errors(predicted, measured)
    tau = kendalltau(predicted, measured).statistic if len(errors) > 1 else float("nan")
    return {
        "n": len(errors),
        "within_10pct": sum(abs(e) <= tolerance for e in errors) / len(errors),
        "kendall_tau": float(tau),
        "mape": statistics.fmean(abs(e) for e in errors),
        "max_abs_error": max(abs(e) for e in errors),
        "mean_error": statistics.fmean(errors),
    }
