"""`autonad evaluate` and `autonad predict`: use an exported model on a dataset or on image files."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from rich.table import Table

from autonad.cli.common import (
    add_device_option,
    check_output,
    metrics_table,
    positive_float,
    positive_int,
    threshold,
)
from autonad.cli.train import add_data_options
from autonad.config import write_text_atomic
from autonad.data import open_dataset
from autonad.data.io import read_image, write_image
from autonad.data.preview import class_colour, overlay
from autonad.decision import Decision
from autonad.errors import AutoNADError
from autonad.export.inference import ExportedModel, check_decision, evaluate_model, predict_image
from autonad.metrics import PHIS, RULES
from autonad.train.distributed import pick_device
from autonad.ui import console, fit_table, progress


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="every metric of an exported model on a dataset split")
    ev.add_argument("--model", type=Path, required=True, help="model.ts, model.onnx or model.pt")
    add_data_options(ev)
    ev.add_argument("--split", default="test", choices=("train", "val", "test"))
    ev.add_argument("--split-file", type=Path, help="a split.json to use (default: the dataset's seeded split)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the generated split (the recipe's; default 0)")
    ev.add_argument("--batch", type=positive_int, default=8)
    add_device_option(ev)
    add_decision_options(ev)
    ev.add_argument("--out", type=Path, help="write all metrics as JSON")
    ev.add_argument("--report", type=Path, metavar="FOLDER",
                    help="write FOLDER/report.html: the metrics, confusion matrix and the worst images")  # fmt: skip
    ev.set_defaults(func=evaluate)

    pr = sub.add_parser("predict", help="masks, overlays and a defect verdict for image files")
    pr.add_argument("--model", type=Path, required=True)
    pr.add_argument("images", nargs="+", type=Path)
    pr.add_argument("--out", type=Path, default=Path("predictions"))
    add_device_option(pr)
    add_decision_options(pr)
    pr.set_defaults(func=predict)


def add_decision_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rule", choices=tuple(RULES),
                   help="how a sample is called defective: " + "; ".join(f"{k}: {v}" for k, v in RULES.items())
                   + " (default: the model's decision)")  # fmt: skip
    p.add_argument("--phi", choices=PHIS, help="sample score: defect pixel count or max defect probability "
                   "(default: the model's decision, calibrated when retrained with --calibrate)")  # fmt: skip
    p.add_argument(
        "--tau", type=threshold, help="the segmentation says defective when phi >= tau (default: the model's)"
    )
    p.add_argument("--cap-threshold", type=threshold,
                   help="CaP says defective when p(defect) >= this (default: the model's, else 0.5)")  # fmt: skip
    p.add_argument("--min-area", type=threshold, metavar="PX",
                   help="QC: predicted defects smaller than this many pixels do not fail a part")  # fmt: skip
    p.add_argument("--fail-area", nargs="+", type=class_area, metavar="CLASS=PX", default=[],
                   help="QC: a defect of CLASS fails the part only when over PX pixels, e.g. scratch=40")  # fmt: skip
    p.add_argument("--pixel-size", type=positive_float, metavar="MM",
                   help="millimetres per image pixel: defect areas are also given in mm^2")  # fmt: skip


def class_area(text: str) -> tuple[str, float]:
    name, sep, area = text.partition("=")
    try:
        value = float(area)
    except ValueError:
        value = -1.0
    if not sep or not name or value < 0:
        raise argparse.ArgumentTypeError(f"expected CLASS=PIXELS with PIXELS >= 0, got '{text}'")
    return name, value


def decision_of(model: ExportedModel, args: argparse.Namespace) -> Decision:
    """The model's own decision with --rule / --phi / --tau / --cap-threshold overriding it (a new phi
    starts from its default tau), checked against the model's outputs."""
    decision = model.decision.with_phi(args.phi or model.decision.phi)
    changes = {"rule": args.rule, "tau": args.tau, "cap_threshold": args.cap_threshold}
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.tau is not None:
        changes["class_tau"] = {}  # one tau given: it decides for every class
    if changes:
        decision = dataclasses.replace(decision, **changes, target=None, calibrated_on=None)
    if args.min_area is not None or args.fail_area:
        fail_area = {**decision.fail_area, **dict(args.fail_area)}
        decision = dataclasses.replace(
            decision, min_area=decision.min_area if args.min_area is None else args.min_area, fail_area=fail_area
        )
    if decision.qc is not None:
        decision.qc.check(model.classes, "--fail-area")
    check_decision(model, decision)
    return decision


def evaluate(args: argparse.Namespace) -> int:
    if args.out:
        check_output(args.out, folder=False)
    if args.report:
        check_output(args.report)
    model = ExportedModel.load(args.model, pick_device(args.device))
    source = open_dataset(args.dataset, args.data_root, seed=args.seed, split_file=args.split_file,
                          skip_bad=args.skip_bad)  # fmt: skip
    decision = decision_of(model, args)
    model.check_classes(source)
    bad = source.check_split(args.split)  # every good image is evaluated, the bad ones listed
    if not source.splits[args.split]:
        raise AutoNADError(f"{source.name} {args.split}: none of its {len(bad)} images is readable, first: {bad[0]}")
    if args.report:  # the same evaluation, with each image's outcome and the worst ones drawn
        from autonad.report import evaluate_for_report

        report = evaluate_for_report(model, source, args.report, args.split, decision, batch=args.batch)
    else:
        report = evaluate_model(model, source, args.split, args.batch, decision)
    title = f"{args.model.name} on {source.name} {args.split} ({report.num_samples} images)"
    console.print(metrics_table(report, title))
    console.print(decision.describe())
    if args.out:
        record = {**report.to_dict(), **({"unreadable": bad} if bad else {})}
        write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    if args.report:
        from autonad.report import write_report

        console.print(f"report: {write_report(args.report, args.split)}")
    if bad:
        raise AutoNADError(f"{len(bad)} images of {source.name} {args.split} unreadable (the metrics above cover "
                           f"the other {report.num_samples}), first: {bad[0]}")  # fmt: skip
    return 0


def predict(args: argparse.Namespace) -> int:
    """Every readable image is predicted and written; unreadable ones are listed (in predictions.json
    too) and make the command exit 2 after the others are done."""
    model = ExportedModel.load(args.model, pick_device(args.device))
    decision = decision_of(model, args)
    check_output(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"{args.model.name}: {decision.describe()}"
    table = Table("image", "verdict", "score", "CaP", "defects", "defect pixels", title=title)
    results, bad = [], []
    with progress() as bar:
        for path, name in bar.track(list(zip(args.images, output_names(args.images))), description="predicting"):
            try:
                image = read_image(path)
            except AutoNADError as e:
                bad.append({"image": str(path), "error": str(e)})
                continue
            pred = predict_image(model, path, image, decision, args.pixel_size)
            write_image(args.out / f"{name}_mask.png", _colour_mask(pred.mask))
            write_image(args.out / f"{name}_overlay.png", overlay(image, pred.mask))
            cap = "-" if pred.cap is None else f"{pred.cap:.3f}" + "".join(f" {c}" for c in pred.classes or {})
            table.add_row(path.name, "DEFECT" if pred.defective else "ok", f"{pred.score:.3f}", cap, _defects(pred),
                          str(pred.defect_pixels))  # fmt: skip
            results.append({"image": str(path), "output": name, "defective": pred.defective, "score": pred.score,
                            "cap": pred.cap, "defect_pixels": pred.defect_pixels,
                            "instances": [i.to_dict() for i in pred.instances],
                            **({"classes": pred.classes} if pred.classes is not None else {}),
                            "decision": decision.to_dict()})  # fmt: skip
    console.print(fit_table(table, ("CaP", "defect pixels", "score", "defects")))
    record = results if not bad else {"predictions": results, "unreadable": bad}
    write_text_atomic(args.out / "predictions.json", json.dumps(record, indent=1) + "\n")
    console.print(f"masks and overlays in {args.out}")
    if bad:
        raise AutoNADError(f"{len(bad)} of {len(args.images)} images unreadable (listed in "
                           f"{args.out / 'predictions.json'}), first: {bad[0]['error']}")  # fmt: skip
    return 0


def _defects(pred) -> str:
    """'2 scratch, 1 spot': the image's defect instances by class."""
    counts: dict[str, int] = {}
    for instance in pred.instances:
        counts[instance.class_name] = counts.get(instance.class_name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in counts.items()) or "-"


def output_names(paths: list[Path]) -> list[str]:
    """A file-name stem per input, unique among them: the stem where it is, else the stem with as many
    parent folders as make it unique (a/part.png, b/part.png -> a_part, b_part). The same file twice
    gets the same name."""
    resolved = [p.resolve() for p in paths]
    depth = {r: 0 for r in resolved}
    while True:
        names = {r: "_".join([*r.parent.parts[len(r.parent.parts) - depth[r] :], r.stem]) for r in depth}
        clashes = [r for r in depth if sum(n == names[r] for n in names.values()) > 1]
        deeper = [r for r in clashes if depth[r] < len(r.parent.parts)]
        if not deeper:
            return [_safe_name(names[r]) for r in resolved]
        for r in deeper:
            depth[r] += 1


def _safe_name(name: str) -> str:
    return name.replace("/", "_").lstrip("_") or "image"


def _colour_mask(mask: np.ndarray) -> np.ndarray:
    out = np.zeros((*mask.shape, 3), dtype=np.uint8)
    for class_id in np.unique(mask):
        if class_id:
            out[mask == class_id] = class_colour(int(class_id))
    return out
