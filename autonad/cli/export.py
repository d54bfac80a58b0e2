"""`autonad export`: a searched (or any) arch of a trained supernet, or a search's fine-tuned best arch,
as standalone model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autonad.config import load_yaml_mapping
from autonad.errors import AutoNADError
from autonad.export import FORMATS, export_model, export_subnet
from autonad.space import Arch
from autonad.train.trainer import load_trained_supernet
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


def export_trained(checkpoint: Path, arch: Arch, out: Path, info: dict, formats: list[str]) -> dict[str, Path]:
    """Export `arch` with the weights of a supernet checkpoint; `info` adds metadata (metrics, latency)."""
    trained = load_trained_supernet(checkpoint)
    trained.net.space.validate(arch, "arch")
    keep = {k: v for k, v in info.items() if k not in ("arch", "arch_hash", "input_size", "supernet_config")}
    meta = {**keep, "classes": trained.classes, "normalisation": trained.normalisation,
            "recipe": trained.recipe.name, "supernet_checkpoint": str(checkpoint.resolve()),
            **trained.recipe.transform.scale_info()}  # fmt: skip
    return export_subnet(trained.net, arch, out, trained.recipe.input_size, meta, formats)


def export_finetuned(run_dir: Path, out: Path, info: dict, formats: list[str]) -> dict[str, Path]:
    """Export the best epoch (`best.pt`) of a search's fine-tuning run; `info` adds metadata."""
    from autonad.train.subnet import load_trained_subnet

    trained = load_trained_subnet(run_dir / "best.pt")
    keep = {k: v for k, v in info.items() if k not in ("arch", "arch_hash", "input_size", "supernet_config")}
    meta = {**keep, **trained.export_info()}
    meta["metrics"] = meta.pop("val")  # the fine-tuned model's best validation epoch (the search's: inherited_metrics)
    return export_model(trained.net, out, trained.input_size, meta, formats)
