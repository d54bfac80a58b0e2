"""`autonad export`: a searched (or any) arch of a trained supernet, or a search's fine-tuned best arch,
as standalone model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autonad.config import load_yaml_mapping
from autonad.errors import AutoNADError
from autonad.export import FORMATS
from autonad.pipeline import export_finetuned, export_trained
from autonad.space import Arch
from autonad.ui import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a subnet as TorchScript / ONNX / state dict (checked on export)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path,
                     help="a search run folder (its best_arch.yaml and supernet, or its fine-tuned model)")  # fmt: skip
    src.add_argument("--arch", type=Path, help="an arch YAML (with --supernet)")
    p.add_argument("--supernet", type=Path, help="supernet training checkpoint (with --arch)")
    p.add_argument("--format", nargs="+", choices=FORMATS, default=["torchscript", "onnx"], dest="formats")
    p.add_argument("--out", type=Path, help="output folder (default: the run folder, or export/<arch hash>)")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    if args.run is not None:
        summary = load_yaml_mapping(args.run / "summary.yaml")
        checkpoint, arch = Path(summary["supernet"]), Arch.load(args.run / "best_arch.yaml")
        old = args.run / "model.json"
        info = json.loads(old.read_text()) if old.is_file() else {}
        out = args.out or args.run
        if summary.get("finetune"):  # the search fine-tuned its best arch: that is the model it exported
            paths = export_finetuned(args.run / Path(summary["finetune"]["run"]).name, out, info, args.formats)
            for fmt, path in paths.items():
                console.print(f"{fmt}: {path}")
            return 0
    else:
        if args.supernet is None:
            raise AutoNADError("--arch needs --supernet CHECKPOINT (the trained supernet to take the weights from)")
        checkpoint, arch, info = args.supernet, Arch.load(args.arch), {}
        out = args.out or Path("export") / arch.hash
    paths = export_trained(checkpoint, arch, out, info, args.formats)
    for fmt, path in paths.items():
        console.print(f"{fmt}: {path}")
    return 0
