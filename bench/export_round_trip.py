"""Export round trip (issue 7): the in-memory retrained model, its TorchScript and its ONNX file
give the same metrics on a dataset split.

The in-memory model is `best.pt` of an `autonad retrain` run, wrapped like an exported one, so
all three go through the same evaluation (model transform, decision, metrics); the split is the
run's recorded `split.json`.

    python bench/export_round_trip.py runs/retrain/mt__7d2f0521__supernet__cap --dataset mt \\
        --data-root ../shared/datasets/magnetic_tile
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import report

METRICS = ("miou", "miou_fg", "mf1", "pooled_iou", "sample_miou", "seg_accuracy", "seg_recall", "seg_precision")


def main(argv: list[str] | None = None) -> int:
    import torch

    from autonad.data import open_dataset
    from autonad.export.inference import ExportedModel, evaluate_model
    from autonad.train.subnet import load_trained_subnet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="an `autonad retrain` run folder (best.pt, model.ts, model.onnx)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root")
    p.add_argument("--split", default="test")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    source = open_dataset(args.dataset, args.data_root, split_file=args.run / "split.json")
    exported = ExportedModel.load(args.run / "model.ts")
    trained = load_trained_subnet(args.run / "best.pt")
    models = {
        "in-memory (best.pt)": ExportedModel(trained.net, exported.meta, args.run / "best.pt"),
        "torchscript": exported,
        "onnx": ExportedModel.load(args.run / "model.onnx"),
    }
    rows, seconds = {}, {}
    for name, model in models.items():
        start = time.perf_counter()
        report_ = evaluate_model(model, source, args.split)
        seconds[name] = round(time.perf_counter() - start, 2)
        values = report_.to_dict()
        rows[name] = {k: values[k] for k in (*METRICS, "confusion", "tau", "phi", "num_samples")}
    reference = rows["in-memory (best.pt)"]
    diff = {name: max(abs((row[k] or 0.0) - (reference[k] or 0.0)) for k in METRICS) for name, row in rows.items()}
    same_confusion = {name: row["confusion"] == reference["confusion"] for name, row in rows.items()}
    report("export_round_trip", {
        "run": str(args.run), "dataset": source.name, "split": args.split, "images": reference["num_samples"],
        "decision": {"phi": reference["phi"], "tau": reference["tau"]},
        "metrics": {name: {k: row[k] for k in METRICS} for name, row in rows.items()},
        "max_abs_metric_difference_vs_in_memory": diff, "identical_confusion_matrix": same_confusion,
        "eval_seconds": seconds, "command": "python bench/export_round_trip.py " + " ".join(argv or []),
    })  # fmt: skip
    print(json.dumps(diff))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
