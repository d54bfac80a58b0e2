"""`autonad profile` and `autonad latency`: latency tables, predictions, validation, the prior."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rich.table import Table

from autonad.cli.common import add_device_option, input_size, positive_float, positive_int
from autonad.config import write_text_atomic
from autonad.errors import AutoNADError
from autonad.latency.measure import TimingConfig
from autonad.latency.prior import LatencyPrior
from autonad.latency.profiler import DEFAULT_CLASSES, ProfileRequest, profile_measured, report
from autonad.latency.roofline import roofline_profile, roofline_spec
from autonad.latency.runtimes import RUNTIMES, check_runtime
from autonad.latency.table import DeviceTables, Profile, RooflineSpec, canonical_device, device_index, load_tables
from autonad.pipeline import latency_records, predictor_for
from autonad.space import Arch, SearchSpace
from autonad.train.distributed import pick_device
from autonad.ui import console, fit_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure a latency table on this machine (or estimate one: --roofline)")
    p.add_argument("--hw", required=True, help="device name for the table (e.g. cpu-x86-2core, jetson-orin-nano)")
    add_profile_selection(p, default_size=True)
    p.add_argument("--classes", type=_int_list, default=DEFAULT_CLASSES, help="class counts to time the head for")
    p.add_argument("--out", type=Path, help="table file (default: latency_tables/<hw>.yaml here)")
    p.add_argument("--alias", action="append", default=[], help="short name for the device (repeatable)")
    p.add_argument("--description", help="what the device is (kept in the table file)")
    p.add_argument("--resume", action="store_true", help="keep the entries a stopped run measured, time the rest")
    p.add_argument(
        "--reuse",
        metavar="SPACE",
        help="take the entries this space shares with SPACE's measured profile in the table; time the rest",
    )
    p.add_argument("--roofline", action="store_true", help="estimate from the device's peak FLOP/s and bandwidth")
    p.add_argument("--peak-gflops", type=positive_float, help="--roofline: the device's fp32 peak (kept in its table)")
    p.add_argument("--bandwidth-gbs", type=positive_float, help="--roofline: its memory bandwidth in GB/s")
    p.add_argument("--launch-us", type=positive_float, help="--roofline: per-kernel launch cost (default 5 us)")
    published = "published timings of reference networks on this device (paper 003 Table VIII: rtx3090, jetson)"
    p.add_argument("--published", action="store_true",
                   help=f"--roofline: first fit the achieved fraction and per-kernel cost on {published}")  # fmt: skip
    add_device_option(p)
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (fixed while timing)")
    p.add_argument("--repeats", type=positive_int, default=15, help="timed samples per component (median)")
    p.add_argument("--calibrate", type=int, default=40, help="random subnets timed end to end for the calibration")
    p.set_defaults(func=profile)
    register_latency(sub)


def register_latency(sub: argparse._SubParsersAction) -> None:
    """`autonad latency` and its actions (tables, validate, prior)."""
    lat = sub.add_parser("latency", help="predicted latency of an arch; validate a table; the prior heatmap")
    lat.add_argument("--hw", help="device name, alias or table path (e.g. jetson, cpu, 3090)")
    lat.add_argument("--arch", type=Path, help="arch YAML/JSON to predict")
    add_profile_selection(lat)
    lat.add_argument("--classes", type=positive_int, default=2, help="segmentation classes incl. background")
    lat.add_argument("--measure", action="store_true", help="also time the arch here (measured tables only)")
    add_device_option(lat)
    lat.set_defaults(func=predict)
    cmds = lat.add_subparsers(dest="latency_command", metavar="ACTION")
    cmds.add_parser("tables", help="the latency tables and their profiles").set_defaults(func=list_tables)
    val = cmds.add_parser("validate", help="time random subnets end to end here and compare with the table")
    val.add_argument("--hw", required=True, help="device name, alias or table path")
    add_profile_selection(val, inherit=True)
    val.add_argument("--n", type=positive_int, default=100, help="random subnets to time")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--classes", type=positive_int, default=argparse.SUPPRESS)
    add_device_option(val)
    val.add_argument("--out", type=Path, help="write the per-subnet figures and the summary as JSON")
    val.set_defaults(func=validate_table)
    pri = cmds.add_parser("prior", help="write the latency prior heatmap (paper Fig. 5)")
    source = pri.add_mutually_exclusive_group(required=True)
    source.add_argument("--hw", help="device name, alias or table path")
    source.add_argument("--records", type=Path, help="fit it to a supernet checkpoint's training latency records")
    add_profile_selection(pri, inherit=True)
    pri.add_argument("--temperature", type=float, default=1.0, help="relative softmax temperature")
    pri.add_argument("--out", type=Path, default=Path("latency_prior.png"))
    pri.set_defaults(func=prior_heatmap)


def add_profile_selection(p: argparse.ArgumentParser, default_size: bool = False, inherit: bool = False) -> None:
    """--search-space, --input-size, --batch, --runtime. `inherit`: an action of `latency`, whose own
    options may come before the action's name (`latency --runtime onnxruntime validate`): no defaults
    of its own that would overwrite them."""
    given = {"default": argparse.SUPPRESS} if inherit else {}
    p.add_argument("--search-space", **(given or {"default": "autonad"}), help="search space name or YAML path")
    p.add_argument(
        "--input-size",
        type=input_size,
        **(given or {"default": (320, 320) if default_size else None}),
        help="HxW" + (" (default 320x320)" if default_size else " (default: the table's only profile for the space)"),
    )
    p.add_argument("--batch", type=positive_int, **(given or {"default": 1}))
    add_runtime_option(p, inherit)


def add_runtime_option(p: argparse.ArgumentParser, inherit: bool = False) -> None:
    p.add_argument("--runtime", choices=RUNTIMES, default=argparse.SUPPRESS if inherit else "torch",
                   help="inference runtime the table is timed with: eager torch (default) or onnxruntime (how "
                        "the exported model.onnx runs)")  # fmt: skip


def _int_list(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError("class counts are at least 2 (background + one defect)")
    return values


# -- profile ------------------------------------------------------------------------------------
def profile(args: argparse.Namespace) -> int:
    space = SearchSpace.load(args.search_space)
    hw = canonical_device(args.hw)
    out = args.out or Path("latency_tables") / f"{hw}.yaml"
    request = ProfileRequest(hw, space, tuple(args.input_size), args.batch, tuple(args.classes), args.calibrate)
    if args.published and not args.roofline:
        raise AutoNADError("--published calibrates a roofline estimate: add --roofline")
    if args.roofline:
        if args.runtime != "torch":
            raise AutoNADError(f"--roofline estimates kernels, not a runtime: drop --runtime {args.runtime}")
        prof = _roofline(request, hw, out, args)
    else:
        device = pick_device(args.device)
        timing = TimingConfig(threads=args.threads, repeats=args.repeats, runtime=check_runtime(args.runtime))
        console.print(f"profiling [bold]{space.name}[/] at {request.input_size[0]}x{request.input_size[1]} "
                      f"on this machine as [bold]{hw}[/] -> {out}")  # fmt: skip
        prof = profile_measured(request, out, device, timing, args.resume, args.reuse)
    if args.alias or args.description:
        tables = DeviceTables.read(out)
        tables.aliases = sorted(set(tables.aliases) | set(args.alias))
        tables.description = args.description or tables.description
        tables.write(out)
    report(prof, out)
    return 0


def _roofline(request: ProfileRequest, hw: str, out: Path, args: argparse.Namespace) -> Profile:
    """Estimate the space's components from the device's peak figures: the table's, or those given."""
    from autonad.latency.components import ComponentFactory

    tables = _table_to_extend(hw, out)
    given = {k: v for k, v in (("peak_gflops", args.peak_gflops), ("bandwidth_gbs", args.bandwidth_gbs),
                               ("launch_us", args.launch_us)) if v is not None}  # fmt: skip
    if given and tables.roofline is None and not {"peak_gflops", "bandwidth_gbs"} <= set(given):
        raise AutoNADError(f"'{hw}' has no peak figures yet: give both --peak-gflops and --bandwidth-gbs")
    if given:  # new figures: a calibration fitted under the old ones no longer applies
        old = dataclasses.asdict(tables.roofline) if tables.roofline else {}
        tables.roofline = RooflineSpec(**{**old, "efficiency": {}, "calibrated_on": [], **given})
    if args.published:
        if args.launch_us is not None:
            raise AutoNADError("--published fits the per-kernel cost: drop --launch-us")
        from autonad.latency.references import calibrate_on_published

        tables.roofline = calibrate_on_published(roofline_spec(tables), canonical_device(hw))
    factory = ComponentFactory(request.space, request.input_size, request.batch, list(request.classes))
    prof = roofline_profile(factory, tables)
    tables.put(prof)
    tables.write(out)
    return prof


def _table_to_extend(hw: str, out: Path) -> DeviceTables:
    """The table file being written, else a new one with a known device's header (name, aliases,
    description, peak figures), else an empty one."""
    if out.exists():
        return DeviceTables.read(out)
    known = device_index().get(hw)
    if known is None:
        return DeviceTables(hw)
    header = DeviceTables.read(known)
    return DeviceTables(hw, [], header.aliases, header.description, header.roofline)


# -- latency ------------------------------------------------------------------------------------
def predict(args: argparse.Namespace) -> int:
    if args.hw is None or args.arch is None:
        raise AutoNADError("give --hw and --arch (or an action: tables, validate, prior; see autonad latency -h)")
    arch = Arch.load(args.arch)  # the file the user named first, then the table
    pred = predictor_for(args.hw, args.search_space, args.input_size, args.batch, args.classes, args.runtime)
    pred.space.validate(arch, str(args.arch))
    ms = pred.predict(arch)
    console.print(f"arch {arch.short()} ({arch.hash}) on {pred.device}")
    table = Table("part", "ms")
    for kind, value in pred.breakdown(arch).items():
        table.add_row(kind, f"{value:.3f}")
    console.print(table)
    h, w = pred.profile.input_size
    console.print(f"predicted latency: [bold]{ms:.2f} ms[/] ({h}x{w}, batch {pred.profile.batch}; {pred.label})")
    if args.measure:
        from autonad.latency.validate import measure_archs

        measured = measure_archs(pred, [arch], pick_device(args.device))[0]
        console.print(
            f"measured here: [bold]{measured:.2f} ms[/] (prediction off by {100 * (ms - measured) / measured:+.1f}%)"
        )
    return 0


def list_tables(args: argparse.Namespace) -> int:
    from autonad.latency.table import device_index

    table = Table("device", "aliases", "file", "profile", "provenance", "hardware", "entries", "calibration",
                  title="latency tables")  # fmt: skip
    for path in sorted(set(device_index().values()), key=lambda p: p.stem):
        tables = DeviceTables.read(path)
        for prof in tables.profiles:
            cal = prof.calibration
            fit = f"{cal.fitted_on} subnets, MAPE {100 * cal.mape:.1f}%" if cal.fitted_on and cal.mape else "-"
            complete = "" if prof.complete else " (incomplete)"
            table.add_row(tables.device, ", ".join(tables.aliases), str(path), prof.signature + complete,
                          prof.provenance, prof.hardware, str(len(prof.entries)), fit)  # fmt: skip
    console.print(fit_table(table, ("file", "calibration", "hardware", "entries", "aliases")))
    return 0


def validate_table(args: argparse.Namespace) -> int:
    from autonad.latency.validate import validate

    pred = predictor_for(args.hw, args.search_space, args.input_size, args.batch, args.classes, args.runtime)
    result = validate(pred, args.n, args.seed, pick_device(args.device))
    s = result.summary
    within, tau, mape, worst = 100 * s["within_10pct"], s["kendall_tau"], 100 * s["mape"], 100 * s["max_abs_error"]
    console.print(
        f"{pred.device} ({pred.profile.signature}), {s['n']} random subnets: [bold]{within:.0f}%[/] within +-10% "
        f"of measured, Kendall tau [bold]{tau:.3f}[/], MAPE {mape:.1f}%, worst {worst:.1f}%"
    )
    if args.out:
        write_text_atomic(args.out, json.dumps({"summary": s, "subnets": result.rows()}, indent=1) + "\n")
    return 0


def prior_heatmap(args: argparse.Namespace) -> int:
    if args.records:
        prior = prior_from_checkpoint(args.records, args.temperature)
    else:
        space = SearchSpace.load(args.search_space)
        tables = load_tables(args.hw)
        prof = tables.select(space.name, args.input_size, args.batch, args.runtime)
        prior = LatencyPrior.from_profile(prof, space, args.temperature, f"{tables.device} ({prof.provenance})")
    prior.heatmap(args.out)
    console.print(f"wrote {args.out} (prior from {prior.source}, T={args.temperature:g})")
    return 0


def prior_from_checkpoint(path: Path, temperature: float) -> LatencyPrior:
    space, records = latency_records(path)
    return LatencyPrior.from_records(records, space, temperature)
