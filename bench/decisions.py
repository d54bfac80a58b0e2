"""Pass/fail decisions on MT, all-images protocol (issue 20): CaP-gated vs segmentation-only decisions at
the same validation recall, and tail-class sample recall with the two-stage CaP head, over seeds.

For each seed one arch is retrained from scratch with a two-stage CaP head (presence + multi-label
classes, the supernet definition with `multilabel: true`) on MT with every image (952 defect-free);
then, on the recorded split, both decision rules are calibrated on validation for `recall>=0.95` and
evaluated on test: Seg_Precision and Seg_Accuracy of the decision, and per defect class the sample
recall of the segmentation (a predicted pixel of the class) and of the class stage (p_c >= 0.5).
Each rule is calibrated twice: with one tau, and per class (`--per-class`: each defect class its own
tau on its own max probability, the class stage its own thresholds); the mask's per-class pixel
thresholds (fitted on validation for each class's IoU) are evaluated on test beside the argmax.
Runs resume (`autonad retrain --resume`); the JSON is written after every seed, and a seed evaluated
before the per-class variants existed is evaluated again from its run.

    python bench/decisions.py --data-root ../shared/datasets/magnetic_tile --seeds 0 1 2 --steps 800
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml
from common import load_result, mean_sd, report, run_autonad

RULES = ("seg", "gated")
TARGET = "recall>=0.95"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mt")
    p.add_argument("--data-root", default="../shared/datasets/magnetic_tile")
    p.add_argument("--recipe", default="mt-cpu", help="base recipe; its retrain section with --steps")
    p.add_argument("--supernet", default="autonad-fine", help="supernet definition (its CaP head made two-stage)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=800, help="retraining optimiser steps per seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/bench/decisions"))
    p.add_argument("--name", default="decisions")
    p.add_argument(
        "--reevaluate",
        type=int,
        nargs="*",
        default=[],
        metavar="SEED",
        help="evaluate these finished seeds again from their runs (e.g. after a calibration change)",
    )
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    arch = _arch(args)
    done = load_result(args.name)
    seeds = done.get("seeds", {}) if done.get("steps") == args.steps else {}
    seeds = {k: v for k, v in seeds.items() if "seg_per_class" in v}  # evaluated before the per-class variants: again
    for seed in args.seeds:
        if str(seed) in seeds and seed not in args.reevaluate:
            continue
        run = _retrain(args, arch, seed)
        seeds[str(seed)] = _evaluate(args, run)
        _write(args, arch, seeds, argv)
    _write(args, arch, seeds, argv)
    return 0


def _arch(args) -> Path:
    """The middle arch of the supernet's space (every gene at its middle choice), with both CaP stages."""
    from autonad.space import HeadsArch, SearchSpace
    from autonad.supernet import SupernetConfig

    space = SearchSpace.load(SupernetConfig.load(args.supernet).search_space)
    arch = space.decode([len(g.choices) // 2 for g in space.genes], HeadsArch(cap=True, classes=True))
    path = args.out / "arch.yaml"
    arch.save(path)
    return path


def _recipe(args, seed: int) -> Path:
    """The base recipe with a two-stage CaP supernet definition and this seed."""
    from autonad import resources
    from autonad.train.recipe import Recipe

    supernet = yaml.safe_load(resources.resolve("supernets", args.supernet).read_text())
    supernet["heads"] = {**supernet.get("heads", {}), "cap": True, "multilabel": True}
    supernet["name"] = f"{supernet['name']}-two-stage"
    (args.out / "supernet.yaml").write_text(yaml.safe_dump(supernet, sort_keys=False))
    recipe = Recipe.load(args.recipe).to_dict()  # its `base:` chain resolved
    recipe["name"] = f"{recipe['name']}-decisions-s{seed}"
    recipe["supernet"] = str((args.out / "supernet.yaml").resolve())
    recipe["retrain"] = {**recipe["retrain"], "seed": seed, "cap": True}
    recipe["train"] = {**recipe["train"], "seed": seed}  # the split's seed too
    path = args.out / f"recipe-s{seed}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _retrain(args, arch: Path, seed: int) -> Path:
    run = args.out / f"seed{seed}-{args.steps}steps"  # another --steps is another run, never the finished one
    if (run / "model.ts").exists() and (run / "metrics.json").exists():
        return run  # retrained and exported: evaluated again only
    argv = ["retrain", "--arch", str(arch), "--init", "scratch", "--dataset", args.dataset, "--data-root",
            args.data_root, "--recipe", str(_recipe(args, seed)), "--cap", "--steps", str(args.steps), "--out",
            str(run), "--threads", str(args.threads), "--format", "torchscript", "--no-tensorboard"]  # fmt: skip
    argv += ["--resume"] if (run / "checkpoint.pt").exists() else []
    run_autonad(argv)
    return run


def _evaluate(args, run: Path) -> dict:
    """Both rules calibrated on validation for TARGET, with one tau and per class, evaluated on test (one
    pass over each split, and one more over test with the fitted pixel thresholds)."""
    from autonad.data import open_dataset
    from autonad.decision import Decision, calibrate
    from autonad.export.inference import ExportedModel, accumulate_model, compute_report

    model = ExportedModel.load(run / "model.ts")
    meta = json.loads((run / "model.json").read_text())
    source = open_dataset(args.dataset, args.data_root, split_file=run / "split.json")
    started = time.monotonic()
    plain = Decision(phi="max_prob")
    val = accumulate_model(model, source, "val", 8, plain, pixel_histogram=True)
    test = accumulate_model(model, source, "test", 8, plain)
    out = {"outputs": meta["outputs"], "train_s": _train_s(run), "val_images": val.num_samples,
           "test_images": test.num_samples}  # fmt: skip
    for rule in RULES:
        for per_class in (False, True):
            decision = calibrate(val.sample_scores(), rule, "max_prob", TARGET, f"{source.name} val", per_class)
            out[rule + ("_per_class" if per_class else "")] = _outcome(decision, val, test)
    m = compute_report(test, plain).to_dict()
    out["miou"], out["per_class_iou"] = m["miou"], m["per_class_iou"]
    pixel = dict(zip(model.classes[1:], val.pixel_thresholds_fit()))
    tuned = Decision(phi="max_prob", pixel_thresholds={c: t for c, t in pixel.items() if t is not None})
    m = compute_report(accumulate_model(model, source, "test", 8, tuned), tuned).to_dict()
    out["pixel_thresholds"] = tuned.pixel_thresholds
    out["miou_pixel_thresholds"], out["per_class_iou_pixel_thresholds"] = m["miou"], m["per_class_iou"]
    out["eval_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, indent=1))
    return out


def _outcome(decision, val, test) -> dict:
    """The decision's thresholds, its rates on validation and test, and per defect class its sample
    recall/precision on test from the segmentation and from the class stage."""
    from autonad.export.inference import compute_report

    on_val = compute_report(val, decision).decided
    m = compute_report(test, decision).to_dict()
    seg, cap = m["per_class_sample"], m.get("per_class_cap") or {}
    return {"tau": decision.tau, "cap_threshold": decision.cap_threshold if decision.uses_cap else None,
            "class_tau": decision.class_tau or None, "class_thresholds": decision.class_thresholds or None,
            "val_recall": on_val.recall, "val_precision": on_val.precision,
            **{f"test_{k}": m["decision"][k] for k in ("recall", "precision", "accuracy", "f1")},
            "class_recall_segmentation": {c: r["recall"] for c, r in seg.items()},
            "class_precision_segmentation": {c: r["precision"] for c, r in seg.items()},
            "class_recall_cap": {c: r["recall"] for c, r in cap.items()},
            "class_precision_cap": {c: r["precision"] for c, r in cap.items()}}  # fmt: skip


def _train_s(run: Path) -> float | None:
    """Training wall time of the run (its checkpoint's clock, validation included)."""
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.subnet import RETRAIN_FORMAT

    return round(float(load_checkpoint(run / "checkpoint.pt", RETRAIN_FORMAT)["state"]["elapsed_s"]), 1)


def _summary(seeds: dict) -> dict:
    runs = list(seeds.values())
    variants = [f"{rule}{suffix}" for rule in RULES for suffix in ("", "_per_class")]
    out = {f"{v}_{k}": mean_sd([r[v][f"test_{k}"] for r in runs]) for v in variants
           for k in ("precision", "accuracy", "recall")}  # fmt: skip
    classes = list(runs[0]["seg"]["class_recall_segmentation"]) if runs else []
    for v in ("seg", "seg_per_class"):
        for source in ("segmentation", "cap"):
            for rate in ("recall", "precision"):
                key = f"class_{rate}_{source}"
                out[f"{v}_{key}"] = {c: mean_sd([r[v][key].get(c) for r in runs]) for c in classes}
    out["miou"] = mean_sd([r["miou"] for r in runs])
    out["miou_pixel_thresholds"] = mean_sd([r["miou_pixel_thresholds"] for r in runs])
    for key in ("per_class_iou", "per_class_iou_pixel_thresholds"):
        out[key] = {c: mean_sd([r[key][c] for r in runs]) for c in classes}
    return out


def _write(args, arch: Path, seeds: dict, argv) -> None:
    report(args.name, {"dataset": args.dataset, "protocol": "all images (defect-free included)", "target": TARGET,
                       "recipe": args.recipe, "supernet": args.supernet, "arch": yaml.safe_load(arch.read_text()),
                       "steps": args.steps, "seeds_planned": args.seeds, "seeds": seeds, "summary": _summary(seeds),
                       "partial": len(seeds) < len(args.seeds),
                       "command": "python bench/decisions.py " + " ".join(argv)})  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
