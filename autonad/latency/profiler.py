"""`autonad profile`: build a latency profile on the machine we run on (or a roofline estimate).

Measured: every component of the space is timed (resumable: the file is rewritten atomically
every few seconds with `complete: false`), then `calibrate` random subnets are timed end to end
and the per-kind scales + constant fitted to them (`predictor.fit_calibration`).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch

from autonad.errors import AutoNADError
from autonad.latency.components import ComponentFactory
from autonad.latency.measure import (
    TimingConfig,
    fixed_threads,
    probe_reference_ms,
    random_archs,
    time_component,
    time_subnets,
)
from autonad.latency.predictor import LatencyPredictor, fit_calibration
from autonad.latency.runtimes import runtime_version
from autonad.latency.table import Calibration, DeviceTables, Profile
from autonad.space import SearchSpace
from autonad.timing import device_name
from autonad.ui import console, progress

CALIBRATION_SEED = 1_000_003  # validation (`latency validate`) draws its subnets with other seeds
DEFAULT_CLASSES = [2, 3, 4, 5, 6, 7, 8]  # head entries: covers every shipped dataset's class count


@dataclass(frozen=True)
class ProfileRequest:
    hw: str  # device name written into the file
    space: SearchSpace
    input_size: tuple[int, int]
    batch: int = 1
    classes: tuple[int, ...] = tuple(DEFAULT_CLASSES)
    calibrate: int = 40  # end-to-end subnets the calibration is fitted to
    save_every_s: float = 10.0


def measured_method(timing: TimingConfig, calibrate: int) -> str:
    how = "in inference mode" if timing.runtime == "torch" else f"exported to ONNX, in an {timing.runtime} session"
    return (
        f"autonad profile: each component timed alone {how}, median of {timing.repeats} samples after "
        f"{timing.warmup} warm-up runs (small modules looped to >= {timing.min_sample_ms} ms per sample), "
        f"{timing.threads} thread(s), device synchronised, each sample relative to a fixed probe workload "
        f"timed before and after it (drift compensation, x probe_ms); per-kind scales + constant fitted to "
        f"{calibrate} random subnets timed end to end (median of 3 round-robin passes)"
    )


def new_profile(request: ProfileRequest, device: torch.device, timing: TimingConfig) -> Profile:
    return Profile(
        search_space=request.space.name,
        input_size=list(request.input_size),
        batch=request.batch,
        provenance="measured",
        method=measured_method(timing, request.calibrate),
        hardware=device_name(device),
        runtime={
            "torch": torch.__version__.split("+")[0],
            "python": platform.python_version(),
            "device": device.type,
            "threads": timing.threads,
            **runtime_fields(timing.runtime),
        },  # fmt: skip
        date=date.today().isoformat(),
        classes=list(request.classes),
    )


def runtime_fields(runtime: str) -> dict[str, str]:
    """What a profile's `runtime` records beyond torch's: the runtime's name and version (none for eager torch)."""
    return {} if runtime == "torch" else {"runtime": runtime, runtime: runtime_version(runtime)}


def open_tables(path: Path, hw: str) -> DeviceTables:
    return DeviceTables.read(path) if path.exists() else DeviceTables(device=hw)


def profile_measured(
    request: ProfileRequest, out: Path, device: torch.device, timing: TimingConfig, resume: bool,
    reuse: str | None = None,
) -> Profile:  # fmt: skip
    """Measure (or finish measuring, with `resume`) the profile and write it into `out`. `reuse` names
    another space's measured profile in the same table, at the same input size, batch and threads:
    the entries both spaces share are taken from it (a key names one module at one resolution), so
    a space that differs from it in a few modules is timed in those alone."""
    tables = open_tables(out, request.hw)
    old = tables.find(request.space.name, request.input_size, request.batch, timing.runtime)
    with fixed_threads(timing.threads):  # the hardware line names the threads it is timed with
        profile = new_profile(request, device, timing)
    base = reused_profile(tables, reuse, request, profile) if reuse else None
    if base is not None:
        old = base
        profile.method += f"; the entries shared with '{reuse}' taken from its profile of {base.date}"
    if (resume or base is not None) and old is not None and old.provenance == "measured":
        profile.entries = dict(old.entries)
    with fixed_threads(timing.threads):
        probe_ms = old.runtime.get("probe_ms") if profile.entries else None
        probe_ms = probe_ms or round(probe_reference_ms(device, timing), 5)
    profile.runtime["probe_ms"] = probe_ms
    timing = dataclasses.replace(timing, probe_ms=probe_ms)
    factory = ComponentFactory(request.space, request.input_size, request.batch, list(request.classes))
    components = list(factory.components())
    wanted = {c.key for c in components}
    profile.entries = {k: v for k, v in profile.entries.items() if k in wanted}
    todo = [c for c in components if c.key not in profile.entries]
    with fixed_threads(timing.threads), progress() as bar:
        task = bar.add_task(f"profiling {request.space.name} on {request.hw}", total=len(todo))
        last_save = time.monotonic()
        for component in todo:
            profile.entries[component.key] = round(time_component(component, device, timing), 5)
            bar.advance(task)
            if time.monotonic() - last_save > request.save_every_s:
                _save(tables, profile, out)
                last_save = time.monotonic()
        _save(tables, profile, out)
        profile.calibration = calibrate(request, profile, device, timing)
    profile.complete = True
    _save(tables, profile, out)
    return profile


def reused_profile(tables: DeviceTables, space: str, request: ProfileRequest, profile: Profile) -> Profile:
    """The measured profile `profile_measured(reuse=space)` starts from (timed on the same processor
    with the same runtime and threads as `profile` will be); a one-line error if there is none."""
    size = "x".join(map(str, request.input_size))
    base = tables.find(space, request.input_size, request.batch, profile.runtime_name)
    if base is None or base.provenance != "measured":
        raise AutoNADError(f"--reuse {space}: the table has no measured profile of it at {size}, batch {request.batch}")
    keys = ("device", "threads", "torch", "onnxruntime")
    then = (base.hardware, *(base.runtime.get(k) for k in keys))
    now = (profile.hardware, *(profile.runtime.get(k) for k in keys))
    if then != now:

        def told(values) -> str:
            ort = f", onnxruntime {values[4]}" if values[4] else ""
            return f"{values[0]} ({values[1]}, {values[2]} thread(s), torch {values[3]}{ort})"

        raise AutoNADError(f"--reuse {space}: its profile was timed on {told(then)}, this run on {told(now)}: time "
                           "the whole space")  # fmt: skip
    if not base.runtime.get("probe_ms"):
        raise AutoNADError(f"--reuse {space}: its profile has no probe time to set its entries beside new ones")
    return base


def calibrate(request: ProfileRequest, profile: Profile, device: torch.device, timing: TimingConfig) -> Calibration:
    """Time `request.calibrate` random subnets end to end and fit the calibration to them."""
    if request.calibrate < 3:
        return Calibration()
    classes = request.classes[0]
    image = torch.randn(request.batch, request.space.in_channels, *request.input_size)
    archs = random_archs(request.space, request.calibrate, CALIBRATION_SEED)
    measured = time_subnets(request.space, archs, image, classes, device, timing, description="calibrating")
    uncalibrated = LatencyPredictor(request.hw, profile, request.space, classes)
    return fit_calibration([uncalibrated.kind_sums(a) for a in archs], measured)


def _save(tables: DeviceTables, profile: Profile, out: Path) -> None:
    tables.put(profile)
    tables.write(out)


def report(profile: Profile, out: Path) -> None:
    cal = profile.calibration
    console.print(
        f"wrote {out}: {profile.signature}, {len(profile.entries)} entries, provenance {profile.provenance}"
        + (f"; calibration fitted on {cal.fitted_on} subnets, MAPE {100 * cal.mape:.1f}%" if cal.fitted_on else "")
    )
