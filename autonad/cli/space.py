"""`autonad space`: list and show search spaces."""

from __future__ import annotations

import argparse

from rich.table import Table

from autonad import resources
from autonad.space import SearchSpace
from autonad.ui import console, fit_table


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("space", help="list and show search spaces")
    cmds = parser.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    cmds.add_parser("list", help="shipped search spaces").set_defaults(func=list_spaces)
    show = cmds.add_parser("show", help="stages, decoder choices and size of one space")
    show.add_argument("name", help="shipped name (e.g. autonad, tiny) or path to a YAML file")
    show.set_defaults(func=show_space)


def list_spaces(args: argparse.Namespace) -> int:
    table = Table("name", "operators", "archs", "description", title="search spaces")
    for name in resources.list_shipped("search_spaces"):
        space = SearchSpace.load(name)
        ops = ", ".join(space.stages[0].op_choices)
        table.add_row(name, ops, f"~1e{len(str(space.size)) - 1}", space.description)
    console.print(fit_table(table, ("archs", "operators")))
    return 0


def show_space(args: argparse.Namespace) -> int:
    space = SearchSpace.load(args.name)
    table = Table("stage", "stride", "depth", "width", "FFN ratio", "operators", "attn SR", title=space.describe())
    for i, st in enumerate(space.stages, start=1):
        table.add_row(
            str(i),
            str(st.stride),
            _choices(st.depth),
            _choices(st.width),
            _choices(st.ffn_ratio),
            ", ".join(st.op_choices),
            str(st.sr_ratio),
        )
    console.print(fit_table(table, ("attn SR", "FFN ratio", "stride")))
    dec = space.decoder
    console.print(
        f"MFAM decoder: width {_choices(dec.width)}; 10 edges each of {', '.join(dec.edge_ops)}; "
        f"{dec.pool_branches} PPM pool sizes from {_choices(dec.pool_sizes)} ({len(dec.pool_combos)} sets)"
    )
    stem = "conv stem (two 3x3/s2 convs)" if space.stem == "conv" else "patch embedding (7x7/s4)"
    levels = "two levels (full + 1/2 resolution)" if dec.detail_levels == 2 else f"stride {dec.detail_stride}"
    detail = "none (the paper's head)" if dec.detail == [0] else f"widths {_choices(dec.detail)}, {levels}"
    console.print(f"stage-1 input: {stem}; head detail path: {detail}")
    console.print(f"attention head dim {space.head_dim}; genome of {len(space.genes)} genes")
    return 0


def _choices(values: list) -> str:
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "}"
