"""The `autonad` command: a thin layer of argument parsing over the pipeline stages.

Each sub-command lives in its own module with `register(subparsers)`; the handler it sets
receives the parsed arguments. User errors (`AutoNADError`) become one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from rich_argparse import RichHelpFormatter

from autonad import __version__
from autonad.errors import AutoNADError, os_error_message, user_message

COMMAND_MODULES = (
    "datasets",
    "space",
    "arch",
    "train",
    "latency",
    "search",
    "export",
    "retrain",
    "ensemble",
    "deploy",
    "report",
)


class RichParser(argparse.ArgumentParser):
    """argparse with rich-formatted help; sub-command parsers inherit the class."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", RichHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """A bad argument is one line too (the usage is one --help away)."""
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = RichParser(
        prog="autonad",
        description="Design, export and retrain defect-segmentation networks for your hardware.",
    )
    parser.add_argument("--version", action="version", version=f"autonad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"autonad.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_device(args)
        result = args.func(args)
    except AutoNADError as e:
        return _refuse(user_message(e), e.exit_code)
    except OSError as e:  # e.g. --out names a file, or a folder that cannot be written
        return _refuse(os_error_message(e), AutoNADError.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


ON_THE_CLUSTER = ("train-supernet", "retrain", "tune")  # with --ray-address, all their computing runs there


def check_device(args: argparse.Namespace) -> None:
    """--device cuda where this machine has no CUDA device is refused before any work (the rule of
    `autonad.train.distributed.pick_device`); where a command computes on the cluster alone (--ray-address),
    the cluster's GPUs count instead (a search still trains its supernet and fine-tunes here)."""
    remote = getattr(args, "ray_address", None) and args.command in ON_THE_CLUSTER
    if getattr(args, "device", None) == "cuda" and not remote:
        from autonad.train.distributed import pick_device

        pick_device("cuda")


def _refuse(message: str, code: int) -> int:
    from rich.markup import escape

    from autonad.ui import err_console

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return code
