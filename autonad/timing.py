"""Latency measurement done properly: warm-up, device synchronisation, median of repeats.

Shared by the training-time latency records and the latency profiler, so both time the same way.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def synchronize(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(
    fn: Callable[[], Any], device: torch.device | str | None = None, warmup: int = 3, repeats: int = 10
) -> float:
    """Median time of `fn()` in milliseconds: CUDA events on a GPU (the stream's own clock, from the first
    kernel queued to the last one done), else wall time; the device synchronised around each call."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    return statistics.median(elapsed_ms(fn, device) for _ in range(repeats))


def elapsed_ms(fn: Callable[[], Any], device: torch.device | str | None = None) -> float:
    """One call of `fn()` in milliseconds, timed with CUDA events on a GPU and the wall clock elsewhere."""
    if device is not None and torch.device(device).type == "cuda":
        with torch.cuda.device(device):  # events record on the current device's stream
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
    start_s = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - start_s) * 1e3


def median_relative(
    fn: Callable[[], Any],
    reference: Callable[[], Any],
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> float:
    """Median over repeats of time(fn) / time(reference), the reference timed just before and after.

    On a shared machine the speed drifts by 10-30% over seconds (neighbours, clocks); a ratio to a
    fixed workload timed in the same instant cancels most of that drift (measured here: the
    spread of repeated subnet timings fell from ~25% to ~9%)."""

    def timed(f: Callable[[], Any]) -> float:
        return elapsed_ms(f, device)  # the clock median_ms uses, so ratio x probe_ms is consistent

    for _ in range(warmup):
        reference()
        fn()
    synchronize(device)
    ratios = []
    for _ in range(repeats):
        before, t, after = timed(reference), timed(fn), timed(reference)
        ratios.append(2 * t / (before + after))
    return statistics.median(ratios)


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


@functools.cache
def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (avx512_bf16 or AMX): only then is bf16 autocast faster
    than fp32 on it (elsewhere oneDNN emulates bf16 and it is slower)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
