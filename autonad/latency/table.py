"""Latency table files (`latency_tables/<device>.yaml`, SPEC section 6).

One file per device; it holds one profile per (search space, input size, batch), because a
device serves several recipes::

    format: autonad-latency/1
    device: jetson-xavier-nx
    aliases: [jetson]
    description: NVIDIA Jetson Xavier NX (paper Table VIII edge device)
    roofline: {peak_gflops: 844.8, bandwidth_gbs: 51.2, launch_us: 117.6,  # the estimate's figures (optional)
               efficiency: {conv: 1.0, ...}, calibrated_on: ["paper 003 Table VIII: ..."]}
    profiles:
      - search_space: autonad
        input_size: [320, 320]        # H, W
        batch: 1
        dtype: float32
        provenance: roofline          # or measured, or estimate (a roofline calibrated on measurements)
        method: ...                   # how the entries were obtained
        hardware: ...                 # CPU/GPU model, or the peak figures a roofline used
        runtime: {torch: 2.13.0, python: 3.12.3, threads: 1}
        date: "2026-11-21"
        classes: [2, 3, 4, 5, 6, 7, 8]   # head entries exist for these class counts
        complete: true                # false while `autonad profile` is still measuring
        calibration: {constant_ms: 1.2, scales: {embed: 0.9, ...}, fitted_on: 40, mape: 0.03}
        entries: {"s1.conv3 w32 r8.00": 1.234, ...}   # component key -> ms

Entries are raw component costs; the predictor applies the calibration
(`constant + sum(scale[kind] * entry)`), so a table can be re-calibrated without re-measuring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from autonad import resources
from autonad.config import dump_yaml_text, from_mapping, load_yaml, to_mapping, write_text_atomic
from autonad.errors import AutoNADError
from autonad.latency.kernels import KERNEL_CLASSES
from autonad.latency.runtimes import runtime_suffix

FORMAT = "autonad-latency/1"
Provenance = Literal["measured", "roofline", "estimate"]  # estimate: a calibrated roofline


@dataclass
class Calibration:
    constant_ms: float = 0.0
    scales: dict[str, float] = field(default_factory=dict)  # component kind -> factor (missing: 1)
    fitted_on: int = 0  # end-to-end measurements the fit used (0: not calibrated)
    mape: float | None = None  # mean absolute percentage error of the fit on those measurements


@dataclass(frozen=True)
class RooflineSpec:
    """A device's published peak figures (fp32, no tensor cores) and, once calibrated, the
    achieved fraction of its roofline per kernel class: the parameters of its estimate
    (`autonad.latency.roofline`), kept in its table's header beside its name and aliases."""

    peak_gflops: float
    bandwidth_gbs: float
    launch_us: float = 5.0  # per kernel: launch + the framework's dispatch (uncalibrated: CUDA's launch latency)
    efficiency: dict[str, float] = field(default_factory=dict)  # kernel class -> achieved fraction (missing: 1)
    calibrated_on: list[str] = field(default_factory=list)  # the measurements efficiency and launch_us were fitted on

    def __post_init__(self):
        if not (self.peak_gflops > 0 and self.bandwidth_gbs > 0 and self.launch_us >= 0):
            raise ValueError("roofline figures: peak_gflops and bandwidth_gbs must be > 0, launch_us >= 0")
        unknown = sorted(set(self.efficiency) - set(KERNEL_CLASSES))
        if unknown:
            raise ValueError(
                f"roofline efficiency: unknown kernel class {unknown} (known: {', '.join(KERNEL_CLASSES)})"
            )
        if any(not f > 0 for f in self.efficiency.values()):
            raise ValueError("roofline efficiency: every achieved fraction must be > 0")

    @property
    def calibrated(self) -> bool:
        return bool(self.calibrated_on)

    def fraction(self, kernel_class: str) -> float:
        return self.efficiency.get(kernel_class, 1.0)

    def summary(self, description: str) -> str:
        text = (
            f"{description}; peak {self.peak_gflops:.0f} GFLOP/s fp32, {self.bandwidth_gbs:g} GB/s, "
            f"{self.launch_us:g} us per kernel launch"
        )
        if self.efficiency:
            text += "; achieved fraction " + ", ".join(f"{k} {v:.3g}" for k, v in self.efficiency.items())
        if self.calibrated:
            text += "; calibrated on " + "; ".join(self.calibrated_on)
        return text


@dataclass
class Profile:
    search_space: str
    input_size: list[int]
    batch: int
    provenance: Provenance
    method: str
    hardware: str
    runtime: dict[str, Any]
    date: str
    classes: list[int]
    dtype: str = "float32"
    complete: bool = False
    calibration: Calibration = field(default_factory=Calibration)
    entries: dict[str, float] = field(default_factory=dict)

    def matches(self, search_space: str, input_size: tuple[int, int], batch: int, runtime: str = "torch") -> bool:
        mine = (self.search_space, tuple(self.input_size), self.batch, self.runtime_name)
        return mine == (search_space, tuple(input_size), batch, runtime)

    @property
    def runtime_name(self) -> str:
        """The inference runtime the profile was timed with (`autonad.latency.runtimes`; roofline: torch)."""
        return str(self.runtime.get("runtime", "torch"))

    @property
    def signature(self) -> str:
        h, w = self.input_size
        return f"{self.search_space} {h}x{w} batch {self.batch}{runtime_suffix(self.runtime_name)}"

    @property
    def processor(self) -> str | None:
        """The CPU model a measured CPU profile was timed on (None for GPU and roofline profiles)."""
        if self.provenance != "measured" or self.runtime.get("device") != "cpu":
            return None
        return self.hardware.split(" (", 1)[0].strip() or None

    def host_mismatch(self, device: str) -> str | None:
        """One line when this CPU profile was measured on another processor than this machine's."""
        from autonad.timing import cpu_model

        here = cpu_model()
        if self.processor is None or self.processor == here:
            return None
        h, w = self.input_size
        batch = f" --batch {self.batch}" if self.batch != 1 else ""
        runtime = f" --runtime {self.runtime_name}" if self.runtime_name != "torch" else ""
        return (
            f"note: table '{device}' ({self.signature}) was measured on {self.processor}, this machine is {here}: "
            f"its latencies may be off here; to time this machine, run `autonad profile --hw {device}-here "
            f"--search-space {self.search_space} --input-size {h}x{w}{batch}{runtime}` (minutes) and search with "
            f"--hw {device}-here{runtime}"
        )


@dataclass
class DeviceTables:
    device: str
    profiles: list[Profile] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    description: str = ""
    roofline: RooflineSpec | None = None  # published peaks, for `autonad profile --roofline`
    format: str = FORMAT

    # -- files ------------------------------------------------------------------------------
    @staticmethod
    def read(path: str | Path) -> DeviceTables:
        data = load_yaml(path)
        if isinstance(data, dict) and data.get("format") != FORMAT:
            raise AutoNADError(f"{path}: not an AutoNAD latency table (format: {data.get('format')!r}, want {FORMAT})")
        return from_mapping(DeviceTables, data, str(path))

    def write(self, path: str | Path) -> None:
        data = to_mapping(self)
        head = {k: data.pop(k) for k in ("format", "device", "aliases", "description", "roofline")}
        if head["roofline"] is None:
            del head["roofline"]
        write_text_atomic(path, dump_yaml_text({**head, **data}, flow=False))

    # -- lookup -----------------------------------------------------------------------------
    def profile(
        self, search_space: str, input_size: tuple[int, int], batch: int = 1, runtime: str = "torch"
    ) -> Profile:
        """The complete profile for (space, input size, batch, runtime), or one line listing those that exist."""
        for prof in self.profiles:
            if prof.matches(search_space, input_size, batch, runtime) and prof.complete:
                return prof
        raise self._missing(search_space, input_size, batch, runtime)

    def select(
        self, search_space: str, input_size: tuple[int, int] | None, batch: int = 1, runtime: str = "torch"
    ) -> Profile:
        """Like `profile`; without an input size, the space's only complete profile for the runtime."""
        if input_size is not None:
            return self.profile(search_space, input_size, batch, runtime)
        mine = [p for p in self.profiles if p.search_space == search_space and p.batch == batch and p.complete
                and p.runtime_name == runtime]  # fmt: skip
        if len(mine) == 1:
            return mine[0]
        if not mine:
            raise self._missing(search_space, None, batch, runtime)
        raise AutoNADError(
            f"latency table '{self.device}' has {len(mine)} profiles for search space '{search_space}' at batch "
            f"{batch}{runtime_suffix(runtime)} ({'; '.join(p.signature for p in mine)}); pick one with --input-size HxW"
        )

    def _missing(self, search_space: str, input_size: tuple[int, int] | None, batch: int, runtime: str) -> AutoNADError:
        """One line: no complete profile for this request, what the table has, and how to measure one."""
        size = "" if input_size is None else f" at {input_size[0]}x{input_size[1]},"
        size_flag = "" if input_size is None else f" --input-size {input_size[0]}x{input_size[1]}"
        on, flag = runtime_suffix(runtime), "" if runtime == "torch" else f" --runtime {runtime}"
        have = "; ".join(p.signature + ("" if p.complete else " (incomplete)") for p in self.profiles) or "none"
        return AutoNADError(
            f"latency table '{self.device}' has no profile for search space '{search_space}'{size} batch {batch}{on} "
            f"(it has: {have}); run `autonad profile --hw {self.device} --search-space {search_space}{size_flag}"
            f"{flag}` on the device"
        )

    def find(
        self, search_space: str, input_size: tuple[int, int], batch: int, runtime: str = "torch"
    ) -> Profile | None:
        return next((p for p in self.profiles if p.matches(search_space, input_size, batch, runtime)), None)

    def put(self, profile: Profile) -> None:
        """Add `profile`, replacing one with the same signature."""
        self.profiles = [
            p
            for p in self.profiles
            if not p.matches(profile.search_space, tuple(profile.input_size), profile.batch, profile.runtime_name)
        ]
        self.profiles.append(profile)


# -- device names -----------------------------------------------------------------------------
LOCAL_DIR = Path("latency_tables")  # tables `autonad profile` wrote here; they take precedence
TABLES_ENV = "AUTONAD_LATENCY_TABLES"  # more folders of one's own tables (os.pathsep-separated), after ./latency_tables


def local_table_dirs() -> list[Path]:
    """./latency_tables, then the folders in $AUTONAD_LATENCY_TABLES (the first holding a name wins)."""
    extra = [Path(p).expanduser() for p in os.environ.get(TABLES_ENV, "").split(os.pathsep) if p]
    return [LOCAL_DIR, *extra]


def _local_tables() -> list[Path]:
    shipped = resources.shipped_dir("latency_tables").resolve()
    seen: dict[str, Path] = {}
    for folder in local_table_dirs():
        if folder.is_dir() and folder.resolve() != shipped:
            for path in sorted(folder.glob("*.yaml")):
                seen.setdefault(path.stem, path.resolve())
    return list(reversed(seen.values()))  # later entries win in `device_index`: the first folder's last


def device_index() -> dict[str, Path]:
    """Every device name and alias -> its table file, over the shipped tables and one's own (those
    `autonad profile` wrote to ./latency_tables/, and the folders in $AUTONAD_LATENCY_TABLES): one's
    own table wins over a shipped one of the same name or alias, so a device measured here replaces
    the estimate."""
    index: dict[str, Path] = {}
    shipped = resources.shipped_dir("latency_tables")
    local = _local_tables()
    names = set(resources.list_shipped("latency_tables"))
    for path in [*(shipped / f"{n}.yaml" for n in sorted(names)), *local]:
        index[path.stem] = path
        for alias in map(str, _header(path).get("aliases") or []):
            if alias in names and alias != path.stem:  # a shipped device's own name is not another table's alias
                continue
            index[alias] = path
    by_stem = {path.stem: path for path in local}  # a shipped table's aliases lead to its local replacement
    return {name: by_stem.get(path.stem, path) for name, path in index.items()}


def _header(path: Path) -> dict:
    """The keys above `profiles:` (device, aliases, ...), without parsing thousands of entries."""
    lines = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("profiles:"):
                    break
                lines.append(line)
        data = yaml.safe_load("".join(lines))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def canonical_device(hw: str) -> str:
    """An alias's device name (`jetson` -> `jetson-xavier-nx`, a local table's alias -> its device);
    other names unchanged."""
    return {name: path.stem for name, path in device_index().items()}.get(hw, hw)


def table_path(hw: str) -> Path:
    """The table file for a device name, alias or path (`device_index`); unknown names list what exists."""
    if hw.endswith((".yaml", ".yml")) or "/" in hw:
        return resources.resolve("latency_tables", hw)
    index = device_index()
    if hw not in index:
        names = sorted({p.stem for p in index.values()})
        aliases = sorted(f"{a} (= {p.stem})" for a, p in index.items() if a != p.stem)
        shown = ", ".join(names + aliases) or "none"
        raise AutoNADError(
            f"unknown device '{hw}' (latency tables: {shown}; measure a new device with `autonad profile --hw NAME`)"
        )
    return index[hw]


def load_tables(hw: str) -> DeviceTables:
    return DeviceTables.read(table_path(hw))


def load_profile(hw: str, search_space: str, input_size: tuple[int, int], batch: int = 1) -> tuple[str, Profile]:
    """(device name, profile) for a device name/alias/path and a (space, input size, batch)."""
    tables = load_tables(hw)
    return tables.device, tables.profile(search_space, input_size, batch)
