"""`autonad evaluate` and `autonad predict`: use an exported model on a dataset or on image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from rich.table import Table

from autonad.cli.common import metrics_table, positive_int
from autonad.cli.train import add_data_options
from autonad.config import write_text_atomic
from autonad.data import open_dataset
from autonad.data.io import read_image
from autonad.data.preview import class_colour, overlay
from autonad.export.inference import ExportedModel, evaluate_model, predict_image
from autonad.metrics import DEFAULT_TAU, PHIS
from autonad.ui import console, fit_table, progress


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="every metric of an exported model on a dataset split")
    ev.add_argument("--model", type=Path, required=True, help="model.ts, model.onnx or model.pt")
    add_data_options(ev)
    ev.add_argument("--split", default="test", choices=("train", "val", "test"))
    ev.add_argument("--split-file", type=Path, help="a split.json to use (default: the dataset's seeded split)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the generated split (the recipe's; default 0)")
    ev.add_argument("--batch", type=positive_int, default=8)
    add_decision_options(ev)
    ev.add_argument("--out", type=Path, help="write all metrics as JSON")
    ev.add_argument("--report", type=Path, metavar="FOLDER",
                    help="write FOLDER/report.html: the metrics, confusion matrix and the worst images")  # fmt: skip
    ev.set_defaults(func=evaluate)

    pr = sub.add_parser("predict", help="masks, overlays and a defect verdict for image files")
    pr.add_argument("--model", type=Path, required=True)
    pr.add_argument("images", nargs="+", type=Path)
    pr.add_argument("--out", type=Path, default=Path("predictions"))
    add_decision_options(pr)
    pr.set_defaults(func=predict)


def add_decision_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phi", choices=PHIS, help="sample score: defect pixel count or max defect probability "
                   "(default: the model's decision, calibrated when retrained with --calibrate)")  # fmt: skip
    p.add_argument("--tau", type=float, help="a sample is defective when phi >= tau (default: the model's)")


def decision_of(model: ExportedModel, args: argparse.Namespace) -> dict:
    """The model's own decision, with --phi / --tau overriding it (a new phi starts from its default tau)."""
    decision = model.decision
    if args.phi and args.phi != decision["phi"]:
        decision = {"phi": args.phi, "tau": DEFAULT_TAU[args.phi]}
    if args.tau is not None:
        decision = {"phi": decision["phi"], "tau": args.tau}
    return decision


def evaluate(args: argparse.Namespace) -> int:
    model = ExportedModel.load(args.model)
    source = open_dataset(args.dataset, args.data_root, seed=args.seed, split_file=args.split_file,
                          skip_bad=args.skip_bad)  # fmt: skip
    decision = decision_of(model, args)
    report = evaluate_model(model, source, args.split, args.batch, decision["tau"], decision["phi"])
    title = f"{args.model.name} on {source.name} {args.split} ({report.num_samples} images)"
    console.print(metrics_table(report, title))
    if args.out:
        write_text_atomic(args.out, json.dumps(report.to_dict(), indent=1) + "\n")
    if args.report:
        from autonad.report import evaluate_for_report, write_report

        evaluate_for_report(model, source, args.report, args.split, report, decision=decision)
        console.print(f"report: {write_report(args.report)}")
    return 0


def predict(args: argparse.Namespace) -> int:
    model = ExportedModel.load(args.model)
    decision = decision_of(model, args)
    args.out.mkdir(parents=True, exist_ok=True)
    rule = f"defective when {decision['phi']} >= {decision['tau']:g}"
    table = Table("image", "verdict", "score", "CaP", "defect pixels", title=f"{args.model.name}: {rule}")
    results = []
    with progress() as bar:
        for path in bar.track(args.images, description="predicting"):
            image = read_image(path)
            pred = predict_image(model, path, image, decision)
            Image.fromarray(_colour_mask(pred.mask)).save(args.out / f"{path.stem}_mask.png")
            Image.fromarray(overlay(image, pred.mask)).save(args.out / f"{path.stem}_overlay.png")
            table.add_row(path.name, "DEFECT" if pred.defective else "ok", f"{pred.score:.3f}",
                          "-" if pred.cap is None else f"{pred.cap:.3f}", str(pred.defect_pixels))  # fmt: skip
            results.append({"image": str(path), "defective": pred.defective, "score": pred.score, "cap": pred.cap,
                            "defect_pixels": pred.defect_pixels, "decision": decision})  # fmt: skip
    console.print(fit_table(table, ("CaP", "defect pixels", "score")))
    write_text_atomic(args.out / "predictions.json", json.dumps(results, indent=1) + "\n")
    console.print(f"masks and overlays in {args.out}")
    return 0


def _colour_mask(mask: np.ndarray) -> np.ndarray:
    out = np.zeros((*mask.shape, 3), dtype=np.uint8)
    for class_id in np.unique(mask):
        if class_id:
            out[mask == class_id] = class_colour(int(class_id))
    return out
