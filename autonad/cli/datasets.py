"""`autonad datasets`: list the known datasets, inspect one (reading every file once), preview masks."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from autonad.cli.common import positive_int
from autonad.config import write_text_atomic
from autonad.data import DATASETS, SPLITS, SegSource, open_dataset, summarize
from autonad.data.preview import pick_samples, render_preview
from autonad.data.stats import defect_scale
from autonad.train.recipe import Recipe, default_recipe
from autonad.ui import console, fit_table


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("datasets", help="list, inspect and preview datasets")
    cmds = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    cmds.add_parser("list", help="known dataset names").set_defaults(func=list_datasets)

    inspect = cmds.add_parser("inspect", help="counts per split and class, sizes, pixel shares (reads every file)")
    _source_args(inspect)
    inspect.add_argument("--json", type=Path, metavar="FILE", help="also write the summary as JSON")
    inspect.add_argument("--recipe", help="report defect widths at this recipe's scale (default: the dataset's)")
    inspect.set_defaults(func=inspect_dataset)

    preview = cmds.add_parser("preview", help="PNG grid of images with coloured mask overlays")
    _source_args(preview)
    preview.add_argument("--out", type=Path, required=True, metavar="PNG", help="where to write the grid")
    preview.add_argument("--split", choices=SPLITS, default="train")
    preview.add_argument("--n", type=positive_int, default=16, help="number of samples (default 16)")
    preview.set_defaults(func=preview_dataset)


def _source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default="synthetic", help="dataset name (see `autonad datasets list`)")
    parser.add_argument("--data-root", metavar="DIR", help="the dataset's folder (default $AUTONAD_DATA/<name>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the carved split (default 0)")
    parser.add_argument("--split-file", type=Path, metavar="JSON", help="reuse a recorded split.json")
    parser.add_argument("--skip-bad", action="store_true", help="skip and list bad files instead of stopping")


def _open(args: argparse.Namespace) -> SegSource:
    return open_dataset(args.name, args.data_root, args.seed, args.split_file, args.skip_bad)


def list_datasets(args: argparse.Namespace) -> int:
    table = Table("name", "description", title="datasets")
    for name, text in DATASETS.items():
        table.add_row(escape(name), text)
    console.print(table)
    console.print("Roots: --data-root DIR, or $AUTONAD_DATA/<name>, else ./data/<name>.")
    return 0


def inspect_dataset(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    source = _open(args)
    summary = summarize(source, source.verify())
    recipe = Recipe.load(args.recipe or default_recipe(args.name))
    summary["defect_scale"] = {"recipe": recipe.name, **defect_scale(source, recipe.transform, seed=args.seed)}
    _print_summary(summary)
    _print_scale(summary["defect_scale"])
    _print_bad(source)
    if args.json:
        write_text_atomic(args.json, json.dumps(summary, indent=1) + "\n")
        console.print(f"summary written to {args.json}")
    console.print(f"read every image and mask once in {time.perf_counter() - start:.1f} s")
    return 0


def preview_dataset(args: argparse.Namespace) -> int:
    source = _open(args)
    ids = pick_samples(source, args.split, args.n, args.seed)
    title = f"{source.name} {args.split}: {len(ids)} of {len(source.splits[args.split])} samples"
    out = render_preview(source, ids, args.out, title)
    _print_bad(source)
    console.print(f"preview of {len(ids)} {args.split} samples written to {out}")
    return 0


def _print_summary(s: dict) -> None:
    console.print(f"[bold]{escape(s['dataset'])}[/] {escape(s['root'] or '(generated in memory)')}")
    console.print(
        f"{s['images']} images: {s['positives']} with defects, {s['negatives']} defect-free; "
        f"{s['num_classes']} classes; size HxW {_range(s['height'])} x {_range(s['width'])}"
    )
    split = s["split"]
    console.print(f"split used: {escape(split['origin'])}")
    table = Table("split", "official", "used", "with defects", "defect-free", title="splits")
    for name in SPLITS:
        part = s["per_split"][name]
        official = split["official"].get(name)
        table.add_row(
            name, "-" if official is None else str(official), str(part["images"]), str(part["positives"]),
            str(part["negatives"]),
        )  # fmt: skip
    console.print(table)
    classes = Table("id", "class", "images", *SPLITS, "pixel share", title="classes (images containing the class)")
    for k, name in enumerate(s["classes"]):
        per_split = [str(s["per_split"][p]["images_per_class"][name]) for p in SPLITS]
        share = f"{100 * s['pixel_share'][name]:.2f}%"
        classes.add_row(str(k), escape(name), str(s["images_per_class"][name]), *per_split, share)
    if s["ignore_share"]:
        classes.add_row("255", "ignore", "", "", "", "", f"{100 * s['ignore_share']:.2f}%")
    console.print(fit_table(classes, ("pixel share", "train", "val", "test")))


def _print_scale(s: dict) -> None:
    if not s.get("images"):
        return
    p10, median, p90 = s["defect_width_px"]
    lost = 100 * s["lost_share"]
    warn = "[yellow]" if lost > 10 else ""
    console.print(
        f"defect width (px, native): median {median:g}, p10 {p10:g}, p90 {p90:g} over {s['images']} train images; "
        f"recipe {escape(s['recipe'])} ({s['network_input']}) {warn}loses {lost:.1f}% of the defect pixels"
        + (" (train on crops at native scale: --scale 1)" if warn else "")
    )


def _print_bad(source: SegSource) -> None:
    if source.bad:
        console.print(f"[yellow]skipped {len(source.bad)} bad files:[/]")
        for message in source.bad:
            console.print(f"  {escape(message)}", highlight=False, soft_wrap=True)


def _range(values: list[int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}..{values[1]}"
