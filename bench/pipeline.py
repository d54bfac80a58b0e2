"""The whole pipeline on a real dataset, with the baselines at the same retraining budget (SPEC
section 9 "quality"; paper Table II).

  1. supernet: `autonad train-supernet` with the recipe (trained once, resumed if stopped);
  2. search: `autonad search` once per target device (e.g. the measured CPU table and a roofline
     device), the recipe's search budget;
  3. retraining, every candidate with the recipe's `retrain` settings for the same number of epochs,
     from the supernet's weights, without CaP: the searched arch of every device, the largest subnet,
     a random subnet, the first searched arch with the fixed UPerNet decoder (Table VI), and a plain
     U-Net (`autonad.train.baseline`, quarter width by default so its FLOPs are of the order of the
     subnets'; from scratch: it has no supernet);
  4. per candidate: test-split metrics, params and FLOPs (fvcore), predicted latency on each
     device's table, and end-to-end latency measured here side by side (1 thread, median);
  5. `autonad predict` overlays of a few test images by the first searched model.
Every step resumes or is skipped when its output exists.

    python bench/pipeline.py --dataset neu-seg --data-root ../shared/datasets/neu_seg --recipe neu-seg-cpu \\
        --hw cpu jetson --retrain-epochs 2 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
from pathlib import Path

import yaml
from ablations import _elapsed_s, _Timer
from common import report, run_autonad, supernet_finished

METRICS = ("miou", "miou_fg", "mf1", "mf1_fg", "sample_miou", "seg_accuracy", "seg_recall", "seg_precision")


def main(argv: list[str] | None = None) -> int:
    import torch

    from autonad.latency.table import canonical_device
    from autonad.pipeline import dataset_slug, supernet_run_dir
    from autonad.train.recipe import Recipe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root")
    p.add_argument("--recipe", required=True)
    p.add_argument("--hw", nargs="+", default=["cpu", "jetson"], help="devices to search for (first: the baseline's)")
    p.add_argument("--retrain-epochs", type=int, default=2)
    p.add_argument(
        "--generations",
        type=int,
        nargs="+",
        help="search generations: one for every device, or one per --hw device (default: the recipe's budget)",
    )
    p.add_argument("--retrain-devices", nargs="+", help="devices whose searched arch is retrained (default: all)")
    p.add_argument("--candidates", nargs="*", default=["searched", "largest", "random", "upernet", "unet"])
    p.add_argument("--seed", type=int, default=0, help="draws the random subnet")
    p.add_argument(
        "--unet-widths",
        type=int,
        nargs="+",
        default=[16, 32, 64, 128, 256],
        help="U-Net level widths (default: quarter width, FLOPs of the order of the searched subnets)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overlays", type=int, default=4, help="test images to predict with the first searched model")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    devices = [canonical_device(hw) for hw in args.hw]
    generations = _generations_per_device(args.generations, devices)
    recipe = Recipe.load(args.recipe)
    slug = dataset_slug(args.dataset)
    out = args.out or Path("runs/bench/pipeline") / f"{slug}__{recipe.name}"
    out.mkdir(parents=True, exist_ok=True)
    data = ["--dataset", args.dataset] + (["--data-root", args.data_root] if args.data_root else [])
    timer = _Timer(out / "times.json")
    threads = ["--threads", str(args.threads)]

    supernet_dir = supernet_run_dir(args.dataset, recipe.supernet, recipe.name)
    checkpoint = supernet_dir / "checkpoint.pt"
    if not supernet_finished(checkpoint, recipe):
        run_autonad(["train-supernet", *data, "--recipe", args.recipe, *threads,
                  *(["--resume"] if checkpoint.exists() else [])])  # fmt: skip

    searches = {}
    # the searched and UPerNet candidates need the searches; a run of the other baselines alone does not
    need_search = not args.candidates or {"searched", "upernet"} & set(args.candidates)
    for hw, device in zip(args.hw, devices) if need_search else ():
        run = Path("runs/search") / f"{slug}__{device}__{recipe.name}"
        if not (run / "summary.yaml").exists():
            with timer(f"search_s/{device}"):
                budget = ["--generations", str(generations[device])] if generations[device] else []
                run_autonad(["search", *data, "--hw", hw, "--recipe", args.recipe, *threads, *budget, "--out", str(run),
                          "--no-finetune",  # the candidates are retrained below; the search's time is the search's
                          *(["--resume"] if (run / "search_state.pt").exists() else [])])  # fmt: skip
        searches[device] = run

    archs = candidate_archs(args, recipe, searches, out)
    rows = {}
    for label, arch_file in archs.items():
        run = out / label
        if not (run / "metrics.json").exists():
            with timer(f"retrain_s/{label}"):
                run_autonad(["retrain", "--arch", str(arch_file), *data, "--recipe", args.recipe, "--supernet",
                          str(checkpoint), "--epochs", str(args.retrain_epochs), "--no-cap", *threads, "--out",
                          str(run), *(["--resume"] if (run / "checkpoint.pt").exists() else [])])  # fmt: skip
        rows[label] = subnet_row(run, devices, recipe)
    if "unet" in args.candidates:
        with timer("retrain_s/unet"):
            rows["unet"] = unet_row(args, recipe, out / "unet")
    measure_here(rows, recipe)
    overlays = predict_overlays(args, out, next(iter(archs)), data) if archs and args.overlays else []

    report(f"pipeline_{slug}", {
        "dataset": args.dataset, "recipe": recipe.name, "input_size": list(recipe.input_size),
        "machine": f"{platform.machine()} CPU, {args.threads} torch threads", "retrain_epochs": args.retrain_epochs,
        "supernet": supernet_summary(checkpoint),
        "searches": {d: search_summary(run, timer.get(f"search_s/{d}")) for d, run in searches.items()},
        "candidates": rows, "overlays": overlays,
        "command": "python bench/pipeline.py " + " ".join(argv or []),
    })  # fmt: skip
    return 0


def _generations_per_device(generations: list[int] | None, devices: list[str]) -> dict[str, int | None]:
    """--generations N (every device) or N1 N2 ... (one per --hw device, in order)."""
    if not generations:
        return dict.fromkeys(devices)
    if len(generations) == 1:
        return dict.fromkeys(devices, generations[0])
    if len(generations) != len(devices):
        n = len(devices)
        raise SystemExit(f"--generations: {len(generations)} values for {n} devices; give 1 or {n}")
    return dict(zip(devices, generations))


def candidate_archs(args, recipe, searches: dict[str, Path], out: Path) -> dict[str, Path]:
    """Label -> arch file of every subnet to retrain (written into `out` for the drawn ones)."""
    from autonad.latency.table import canonical_device
    from autonad.space import Arch, DecoderArch, HeadsArch, SearchSpace
    from autonad.supernet import SupernetConfig

    space = SearchSpace.load(SupernetConfig.load(recipe.supernet).search_space)
    archs: dict[str, Path] = {}
    if "searched" in args.candidates:
        wanted = {canonical_device(d) for d in args.retrain_devices or searches}
        archs.update({f"searched-{d}": run / "best_arch.yaml" for d, run in searches.items() if d in wanted})
    drawn = {
        "upernet": lambda: _with_upernet(Arch.load(next(iter(searches.values())) / "best_arch.yaml"), DecoderArch),
        "largest": lambda: space.largest(heads=HeadsArch(cap=False)),
        "random": lambda: space.sample(random.Random(args.seed), heads=HeadsArch(cap=False)),
    }
    for label, make in drawn.items():
        if label in args.candidates:
            path = out / f"{label}_arch.yaml"
            make().save(path)
            archs[label] = path
    return archs


def _with_upernet(arch, decoder_cls):
    return dataclasses.replace(arch, decoder=decoder_cls.upernet(arch.decoder.width))


def subnet_row(run: Path, devices: list[str], recipe) -> dict:
    from autonad.pipeline import predictor_for
    from autonad.supernet.complexity import complexity
    from autonad.train.subnet import load_trained_subnet

    trained = load_trained_subnet(run / "best.pt")
    metrics = json.loads((run / "metrics.json").read_text())
    size = complexity(trained.net, recipe.input_size)
    latency = {}
    for device in devices:
        predictor = predictor_for(device, trained.config.search_space, recipe.input_size, 1, len(trained.classes))
        latency[device] = {"ms": round(predictor.predict(trained.arch), 2), "provenance": predictor.provenance}
    arch = trained.arch
    return {"run": str(run), "arch": arch.hash, "short": arch.short(), "init": trained.init,
            "params": size.params, "flops": size.flops, "predicted_latency": latency,
            "best_epoch": trained.best["epoch"], "train_hours": round(_elapsed_s(run) / 3600, 3),
            "history": _history(run), "test": {k: metrics.get(k) for k in METRICS},
            "per_class_iou": metrics.get("per_class_iou")}  # fmt: skip


def unet_row(args, recipe, run: Path) -> dict:
    from autonad.data import open_dataset
    from autonad.export.inference import ExportedModel, evaluate_model
    from autonad.supernet.complexity import complexity
    from autonad.train.baseline import UNET_RUN_FORMAT, UNetTrainer, load_trained_unet
    from autonad.train.checkpoint import load_checkpoint

    budget = dataclasses.replace(
        recipe, retrain=dataclasses.replace(recipe.retrain, epochs=args.retrain_epochs, cap=False)
    )
    source = open_dataset(args.dataset, args.data_root, seed=budget.retrain.seed)
    if not (run / "best.pt").exists() or _epochs(run, UNET_RUN_FORMAT) < args.retrain_epochs:
        print(f"+ U-Net baseline on {source.name}, {args.retrain_epochs} epochs -> {run}", flush=True)
        UNetTrainer(budget, source, run, tuple(args.unet_widths)).fit(resume=(run / "checkpoint.pt").exists())
    trained = load_trained_unet(run / "best.pt")
    split = "test" if source.splits.get("test") else "val"
    metrics = evaluate_model(ExportedModel(trained.net, trained.meta, run / "best.pt"), source, split).to_dict()
    size = complexity(trained.net, recipe.input_size)
    elapsed = load_checkpoint(run / "checkpoint.pt", UNET_RUN_FORMAT)["state"]["elapsed_s"]
    return {"run": str(run), "arch": "unet", "short": f"U-Net {list(trained.net.widths)}", "init": "scratch",
            "params": size.params, "flops": size.flops, "predicted_latency": {},
            "best_epoch": trained.meta["best"]["epoch"], "train_hours": round(elapsed / 3600, 3),
            "history": _history(run), "test": {k: metrics.get(k) for k in METRICS},
            "per_class_iou": metrics.get("per_class_iou")}  # fmt: skip


def measure_here(rows: dict, recipe, rounds: int = 5) -> None:
    """End-to-end latency of every candidate measured on this machine in one run (1 thread, the
    models taking turns so a change in the shared machine's speed falls on all of them alike)."""
    import functools

    import torch

    from autonad.latency.measure import TimingConfig, time_round_robin

    image = torch.randn(1, 3, *recipe.input_size)
    timing = TimingConfig(threads=1, warmup=3, repeats=9)
    builders = [functools.partial(_trained_net, label, Path(row["run"])) for label, row in rows.items()]
    times = time_round_robin(builders, image, torch.device("cpu"), timing, rounds, "timing candidates here")
    for row, ms in zip(rows.values(), times):
        row["measured_ms_here"] = round(ms, 2)


def _trained_net(label: str, run: Path):
    """The plain network in a retrained run's best.pt (a subnet, or the U-Net baseline)."""
    from autonad.train.baseline import load_trained_unet
    from autonad.train.subnet import load_trained_subnet

    if label == "unet":
        return load_trained_unet(run / "best.pt").net
    return load_trained_subnet(run / "best.pt").net


def predict_overlays(args, out: Path, label: str, data: list[str]) -> list[str]:
    """`autonad predict` on a few test images spread over the split (the split file's order)."""
    split = json.loads((out / label / "split.json").read_text())
    if not split.get("root"):
        return []  # a generated dataset (synthetic): no image files to predict
    test = split["splits"].get("test") or split["splits"]["val"]
    picks = [test[round(i * (len(test) - 1) / max(1, args.overlays - 1))] for i in range(args.overlays)]
    root = Path(split["root"])
    images = [next((root / "images").glob(f"{item}.*")) for item in picks]
    folder = out / "predictions"
    if not folder.exists():
        run_autonad(["predict", "--model", str(out / label / "model.onnx"), *map(str, images), "--out", str(folder)])
    return sorted(str(p) for p in folder.glob("*overlay*"))


def supernet_summary(checkpoint: Path) -> dict:
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.trainer import CHECKPOINT_FORMAT

    ckpt = load_checkpoint(checkpoint, CHECKPOINT_FORMAT)
    device = yaml.safe_load((checkpoint.parent / "run.yaml").read_text()).get("device")
    return {"checkpoint": str(checkpoint), "device": device, "epochs": ckpt["state"]["epoch"],
            "steps": ckpt["state"]["global_step"],
            "hours": round(ckpt["state"]["elapsed_s"] / 3600, 3), "history": ckpt["history"]}  # fmt: skip


def search_summary(run: Path, seconds: float | None) -> dict:
    summary = yaml.safe_load((run / "summary.yaml").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return {"run": str(run), "best": summary["best"]["hash"], "hw": summary["hw"], "search": summary["search"],
            "best_val": summary["best"]["metrics"].get("miou"), "latency_ms": summary["best"].get("latency_ms"),
            "candidates": len(history), "params": summary["best"].get("params"),
            "flops": summary["best"].get("flops"), "minutes": None if seconds is None else round(seconds / 60, 1),
            "pareto_csv": str(run / "pareto.csv"), "pareto_png": str(run / "pareto.png"),
            "prior_png": str(run / "latency_prior.png")}  # fmt: skip


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def _epochs(run: Path, fmt: str) -> int:
    from autonad.train.checkpoint import load_checkpoint

    path = run / "checkpoint.pt"
    return load_checkpoint(path, fmt)["state"]["epoch"] if path.exists() else 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
