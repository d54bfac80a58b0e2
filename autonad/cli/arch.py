"""`autonad arch`: sample, validate and size architectures of a search space."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from rich.table import Column, Table

from autonad.cli.common import input_size, positive_int
from autonad.space import Arch, HeadsArch, SearchSpace
from autonad.ui import console, fit_table


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("arch", help="sample, validate and size architectures")
    cmds = parser.add_subparsers(dest="arch_command", metavar="ACTION", required=True)

    sample = cmds.add_parser("sample", help="write random (or the largest/smallest) archs of a space as YAML")
    sample.add_argument("--space", default="autonad", help="search space name or YAML path (default: autonad)")
    sample.add_argument("--n", type=positive_int, default=1, help="number of random archs")
    sample.add_argument("--seed", type=int, default=0)
    which = sample.add_mutually_exclusive_group()
    which.add_argument("--largest", action="store_true", help="the deepest, widest arch")
    which.add_argument("--smallest", action="store_true", help="the shallowest, narrowest arch")
    sample.add_argument("--cap", action="store_true", help="enable the CaP defect-presence head")
    sample.add_argument("--out", type=Path, help="folder for arch YAML files (default: print only)")
    _size_options(sample)
    sample.set_defaults(func=sample_archs)

    info = cmds.add_parser("info", help="validate arch files against a space and report params/FLOPs")
    info.add_argument("archs", nargs="+", type=Path, help="arch YAML/JSON files")
    info.add_argument("--space", default="autonad", help="search space name or YAML path (default: autonad)")
    _size_options(info)
    info.set_defaults(func=arch_info)


def _size_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-size", type=input_size, default=(320, 320), help="HxW for FLOPs (default 320x320)")
    parser.add_argument("--classes", type=positive_int, default=6, help="segmentation classes incl. background")
    parser.add_argument("--no-size", action="store_true", help="skip params/FLOPs (faster)")


def sample_archs(args: argparse.Namespace) -> int:
    space = SearchSpace.load(args.space)
    heads = HeadsArch(cap=args.cap)
    if args.largest:
        archs = [space.largest(heads=heads)]
    elif args.smallest:
        archs = [space.smallest(heads=heads)]
    else:
        rng = random.Random(args.seed)
        archs = [space.sample(rng, heads=heads) for _ in range(args.n)]
    paths = []
    if args.out:
        for i, arch in enumerate(archs):
            path = args.out / f"arch-{i}-{arch.hash}.yaml"
            arch.save(path)
            paths.append(path)
    _report(space, archs, paths, args)
    return 0


def arch_info(args: argparse.Namespace) -> int:
    space = SearchSpace.load(args.space)
    archs = []
    for path in args.archs:
        arch = Arch.load(path)
        space.validate(arch, where=str(path))
        archs.append(arch)
    _report(space, archs, args.archs, args)
    return 0


def _report(space: SearchSpace, archs: list[Arch], paths: list[Path], args: argparse.Namespace) -> None:
    h, w = args.input_size
    sized = not args.no_size
    table = Table("#", Column("hash", no_wrap=True), Column("arch", overflow="fold"), title=f"archs of '{space.name}'")
    if sized:
        table.add_column("params (M)", justify="right")
        table.add_column(f"GFLOPs @{h}x{w}", justify="right")
    if paths:
        table.add_column("file")
    for i, arch in enumerate(archs):
        row = [str(i), arch.hash, arch.short()]
        if sized:
            size = _complexity(space, arch, args.input_size, args.classes)
            row += [f"{size.params / 1e6:.2f}", f"{size.flops / 1e9:.2f}"]
        if paths:
            row.append(str(paths[i]))
        table.add_row(*row)
    console.print(fit_table(table, ("file",)))
    if len(archs) == 1 and not paths:
        console.print(archs[0].to_yaml())


def _complexity(space: SearchSpace, arch: Arch, size: tuple[int, int], classes: int):
    from autonad.supernet import arch_complexity

    return arch_complexity(space, arch, size, classes)
