"""CaP on / off at retraining (issue 7; paper 000 Table 2): the same arch retrained twice with the
same recipe and seed, with and without the Classifier-as-Plugin head, every metric on the test split.

Each run is an `autonad retrain ... --resume`: a finished run is only re-evaluated, an interrupted
one continues. With CaP the report adds the CaP head's own accuracy/recall and the CaP-gated
sample metrics (segmentation of samples CaP calls clean is emptied).

    python bench/retrain_cap.py --arch runs/search/mt__cpu-x86-2core__mt-cpu/best_arch.yaml --dataset mt \\
        --data-root ../shared/datasets/magnetic_tile --threads 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import report, run_autonad

METRICS = ("miou", "miou_fg", "mf1", "mf1_fg", "pooled_iou", "sample_miou", "seg_accuracy", "seg_recall",
           "seg_precision")  # fmt: skip
CAP = ("cap_accuracy", "cap_recall", "cap_precision")


def main(argv: list[str] | None = None) -> int:
    from autonad.pipeline import dataset_slug
    from autonad.space import Arch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=Path, required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root")
    p.add_argument("--recipe")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-base", type=Path, default=Path("runs/retrain"))
    args = p.parse_args(argv)

    arch = Arch.load(args.arch)
    results = {}
    for cap in ("cap", "no-cap"):
        out = args.out_base / f"{dataset_slug(args.dataset)}__{arch.hash[:8]}__supernet__{cap}"
        argv_ = ["retrain", "--arch", str(args.arch), "--dataset", args.dataset, f"--{cap}", "--out", str(out),
                 "--threads", str(args.threads), "--resume"]  # fmt: skip
        argv_ += ["--data-root", args.data_root] if args.data_root else []
        argv_ += ["--recipe", args.recipe] if args.recipe else []
        run_autonad(argv_)
        meta = json.loads((out / "model.json").read_text())
        history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
        m = meta["metrics"]
        results[cap] = {
            "run": str(out), "split": m["split"], "images": m["num_samples"], "best_epoch": meta["best_epoch"],
            "epochs": len(history), "train_hours": round(_elapsed_s(out) / 3600, 2),
            **{k: m.get(k) for k in METRICS}, **{k: m.get(k) for k in CAP if k in m},
            "cap_gated": m.get("cap_gated"), "per_class_iou": m["per_class_iou"],
        }  # fmt: skip
    report("retrain_cap", {"dataset": args.dataset, "arch": arch.hash, "results": results,
                           "command": "python bench/retrain_cap.py " + " ".join(argv or [])})  # fmt: skip
    return 0


def _elapsed_s(run: Path) -> float:
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.subnet import RETRAIN_FORMAT

    return float(load_checkpoint(run / "checkpoint.pt", RETRAIN_FORMAT)["state"]["elapsed_s"])


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
