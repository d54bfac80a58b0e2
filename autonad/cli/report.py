"""`autonad report`: (re)write a run folder's self-contained report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from autonad.cli.train import add_data_options
from autonad.errors import AutoNADError
from autonad.ui import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write RUN/report.html (search, retrain or evaluation folder)")
    p.add_argument("run", type=Path, help="run folder, e.g. runs/search/<run>")
    add_data_options(p)
    p.set_defaults(dataset=None)
    p.add_argument("--evaluate", action="store_true",
                   help="(re)evaluate the run's model on its test split first (default: only when the run has no "
                        "evaluation yet and --dataset is given)")  # fmt: skip
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="also open it in headless Chromium (Playwright) and save a full-page screenshot")  # fmt: skip
    p.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    from autonad.report import load_evaluation, reevaluate_run, write_report
    from autonad.report.browser import check_browser, open_in_browser

    run: Path = args.run
    if not run.is_dir():
        raise AutoNADError(f"{run}: no such run folder")
    if args.evaluate and args.dataset is None:
        raise AutoNADError("--evaluate: give the run's --dataset (and --data-root) to evaluate on")
    if args.screenshot:
        check_browser()  # before anything is written
    if args.dataset is not None and (args.evaluate or load_evaluation(run) is None):
        path = reevaluate_run(run, args.dataset, args.data_root, args.skip_bad)
    else:
        path = write_report(run)
    console.print(f"report: {path}")
    if args.screenshot:
        check = open_in_browser(path, args.screenshot)
        problems = check.errors + [f"request {r}" for r in check.requests]
        if problems:
            raise AutoNADError(f"{path}: the browser reported {len(problems)} problems, first: {problems[0]}")
        console.print(f"screenshot: {args.screenshot}")
    return 0
