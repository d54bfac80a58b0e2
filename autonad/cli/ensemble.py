"""`autonad ensemble`: retrained subnets combined into one exported model (paper 004's experts)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from autonad.cli.common import (
    add_budget_args,
    add_device_option,
    check_output,
    metrics_table,
    positive_float,
    positive_int,
)
from autonad.cli.latency import add_runtime_option
from autonad.cli.train import add_data_options
from autonad.data import open_dataset
from autonad.decision import Decision
from autonad.errors import AutoNADError
from autonad.export.ensemble import build_ensemble, weight_grid
from autonad.latency import load_tables
from autonad.metrics import RULES, parse_target
from autonad.pipeline import predictor_for
from autonad.train.distributed import pick_device
from autonad.ui import console, fit_table

FORMATS = ("torchscript", "onnx")  # the state-dict format rebuilds one subnet, not an ensemble


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="combine retrained subnets into one model, weights tuned on validation")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--members", type=Path, nargs="+", metavar="RUN",
                     help="retrain run folders (each with best.pt and split.json) of the same data")  # fmt: skip
    src.add_argument("--run", type=Path, metavar="SEARCH",
                     help="a search run folder: pick --k diverse archs of its Pareto front, retrain each")  # fmt: skip
    p.add_argument("--k", type=positive_int, default=3, help="members picked from --run (default 3)")
    p.add_argument("--max-latency-ms", type=positive_float,
                   help="the members' summed predicted latency (on the search's table) at most this")  # fmt: skip
    p.add_argument("--parallel", action="store_true", help="--max-latency-ms bounds the slowest member instead "
                   "(members run side by side)")  # fmt: skip
    p.add_argument("--recipe", help="recipe of the members' retraining (default: the dataset's)")
    add_budget_args(p, "each member's retraining")
    p.add_argument("--threads", type=positive_int, help="torch threads (each retraining's too)")
    add_data_options(p)
    p.add_argument("--calibrate", metavar="TARGET", help="calibrate the ensemble's decision on validation, "
                   "e.g. 'recall>=0.95'")  # fmt: skip
    p.add_argument("--rule", choices=tuple(RULES), default="seg", help="the decision rule --calibrate tunes")
    p.add_argument("--per-class", action="store_true", help="with --calibrate: each defect class's own taus and "
                   "mask pixel threshold too")  # fmt: skip
    p.add_argument("--hw", help="store the members' summed predicted latency on this device")
    add_runtime_option(p)
    p.add_argument("--format", nargs="+", choices=FORMATS, default=list(FORMATS), dest="formats")
    p.add_argument("--out", type=Path, required=True, help="output folder of the ensemble")
    add_device_option(p)
    p.set_defaults(func=ensemble)


def ensemble(args: argparse.Namespace) -> int:
    check_output(args.out)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.calibrate:
        parse_target(args.calibrate)
    elif args.rule != "seg" or args.per_class:
        flag = "--rule" if args.rule != "seg" else "--per-class"
        raise AutoNADError(f"{flag}: give the target to calibrate for with --calibrate (e.g. 'recall>=0.95')")
    weight_grid(args.k if args.run is not None else len(args.members))  # a member count the weight grid takes
    if args.hw:
        load_tables(args.hw)  # an unknown device is refused before any retraining
    if args.run is not None:
        args.members = retrain_members(args)
    if len(set(m.resolve() for m in args.members)) < 2:
        raise AutoNADError("--members: an ensemble needs at least 2 different retrain runs")
    splits = [_split_of(run) for run in args.members]
    if any(s != splits[0] for s in splits[1:]):
        raise AutoNADError("--members: the runs were retrained on different splits; retrain them with the same "
                           "dataset and seed")  # fmt: skip
    source = open_dataset(args.dataset, args.data_root, split_file=args.members[0] / "split.json",
                          skip_bad=args.skip_bad)  # fmt: skip
    predictor = None
    if args.hw:
        predictor = _predictor(args, source.num_classes)
    device = pick_device(args.device)
    result = build_ensemble(args.members, source, args.out, args.formats, args.calibrate, args.rule, predictor, device,
                            per_class=args.per_class)  # fmt: skip
    _print(result, args.out)
    return 0


def retrain_members(args: argparse.Namespace) -> list[Path]:
    """Pick the members from the search run and retrain each (a finished member is reused, an
    interrupted one resumed) into <out>/members/<arch hash>; returns their run folders."""
    from autonad.cli import main as autonad
    from autonad.search.outputs import load_history, pick_members, search_supernet

    picked = pick_members(load_history(args.run), args.k, args.max_latency_ms, args.parallel)
    supernet = search_supernet(args.run)
    runs = []
    for n, candidate in enumerate(picked, 1):
        run = args.out / "members" / candidate.hash[:8]
        run.mkdir(parents=True, exist_ok=True)
        candidate.arch.save(run / "arch.yaml")
        runs.append(run / "retrain")
        if (runs[-1] / "model.json").is_file():
            continue
        console.print(f"[bold]member {n}/{len(picked)}[/]: {candidate.hash} (fitness {candidate.fitness:.1f}, "
                      f"{candidate.latency_ms or 0:.1f} ms on the search's table)")  # fmt: skip
        argv = ["retrain", "--arch", str(run / "arch.yaml"), "--dataset", args.dataset, "--out", str(runs[-1]),
                "--format", "torchscript"]  # fmt: skip
        argv += ["--supernet", str(supernet)] if supernet else ["--init", "scratch"]
        size = "x".join(map(str, args.input_size)) if args.input_size else None
        argv += ["--device", args.device] + (["--skip-bad"] if args.skip_bad else [])
        for flag, value in (("--data-root", args.data_root), ("--recipe", args.recipe), ("--steps", args.steps),
                            ("--budget", args.budget), ("--threads", args.threads), ("--input-size", size),
                            ("--scale", args.scale)):  # fmt: skip
            argv += [flag, str(value)] if value is not None else []
        argv += ["--resume"] if (runs[-1] / "checkpoint.pt").exists() else []
        if autonad(argv) != 0:
            raise AutoNADError(f"retraining ensemble member {candidate.hash} failed (its run: {runs[-1]})")
    return runs


def _split_of(run: Path) -> dict:
    for name in ("best.pt", "split.json"):
        if not (run / name).is_file():
            raise AutoNADError(f"{run}: not a finished retrain run (no {name})")
    return json.loads((run / "split.json").read_text())


def _predictor(args: argparse.Namespace, classes: int):
    from autonad.train.subnet import load_trained_subnet

    first = load_trained_subnet(args.members[0] / "best.pt")
    return predictor_for(args.hw, first.config.search_space, first.input_size, 1, classes, args.runtime)


def _print(result: dict, out: Path) -> None:
    meta = result["meta"]
    table = Table("member", "arch", "weight", "predicted ms", title="ensemble members (weights tuned on validation)")
    for row in meta["ensemble"]["members"]:
        ms = row.get("latency_ms")
        table.add_row(
            Path(row["run"]).name, row["arch_hash"][:8], f"{row['weight']:.2f}", "-" if ms is None else f"{ms:.1f}"
        )
    console.print(fit_table(table, ("predicted ms",)))
    console.print(metrics_table(result["report"], f"ensemble on {meta['metrics']['split']}"))
    console.print(f"decision: {Decision.from_dict(meta.get('decision') or {}).describe()}")
    if "latency_ms" in meta:
        console.print(f"predicted latency on {meta['hw']}: {meta['latency_ms']:.1f} ms (members one after another)")
    for fmt, path in result["files"].items():
        console.print(f"{fmt}: {path}")
    console.print(f"report: {result['page']}")
