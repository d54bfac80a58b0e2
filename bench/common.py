"""What the benchmarks share: where results go and the demo supernet they run on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_CHECKPOINT = Path("runs/supernet/synthetic__tiny-fine__demo/checkpoint.pt")  # trained by the README's main job
INHERITED_METRICS = ("miou", "miou_fg", "pooled_iou", "per_class_iou", "sample_miou", "seg_recall", "seg_accuracy")


def run_autonad(argv: list[str]) -> None:
    """Run one `autonad` command as a user does (its own process: the benchmark imports no CLI code);
    stop the benchmark with one line when it fails."""
    import subprocess

    print("+ autonad " + " ".join(argv), flush=True)
    if subprocess.run([sys.executable, "-m", "autonad", *argv]).returncode != 0:
        raise SystemExit(f"autonad {argv[0]} failed: {' '.join(argv)}")


def report(name: str, result: dict) -> None:
    """Print the figures as JSON and write them to bench/results/<name>.json."""
    text = json.dumps(result, indent=1)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(text + "\n")


def load_result(name: str) -> dict:
    """bench/results/<name>.json as written so far ({} when there is none), for a resumed benchmark."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def mean_sd(values) -> dict | None:
    """{"mean", "sd", "n"} over the values that are not None (sd 0 for one value); None for none."""
    import statistics

    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}  # fmt: skip


def require_checkpoint(path: Path) -> None:
    if not path.is_file():
        sys.exit(f"{path}: not found; run the README's main job first (it trains the demo supernet)")


def inherited_on_test(checkpoint: Path, dataset: str, data_root: str | None = None) -> tuple[dict[str, dict], int]:
    """The largest, smallest and a seeded random subnet of a trained supernet, evaluated with inherited
    weights on the test split of the supernet's recorded split (whole images), every class named;
    and the number of test images."""
    import dataclasses
    import random

    from autonad.data import SegmentationDataset, Transform, eval_loader, open_dataset
    from autonad.metrics import SegMetrics
    from autonad.space import HeadsArch
    from autonad.train.evaluate import accumulate
    from autonad.train.trainer import load_trained_supernet

    trained = load_trained_supernet(checkpoint)
    split = checkpoint.parent / "split.json"
    source = open_dataset(dataset, data_root, seed=trained.recipe.train.seed, split_file=split)
    norm = trained.normalisation
    transform = dataclasses.replace(trained.recipe.transform, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
    loader = eval_loader(SegmentationDataset(source, "test", Transform(transform, train=False)), 4)
    space, heads = trained.net.space, HeadsArch()
    archs = {"largest": space.largest(heads=heads), "smallest": space.smallest(heads=heads),
             "random": space.sample(random.Random(0), heads=heads)}  # fmt: skip
    rows = {}
    for name, arch in archs.items():
        trained.net.set_arch(arch)
        metrics = SegMetrics(source.num_classes, class_names=source.classes)
        m = accumulate(trained.net, loader, metrics, "cpu").compute().to_dict()
        rows[name] = {k: m.get(k) for k in INHERITED_METRICS}
        print(name, {k: rows[name][k] for k in ("miou", "miou_fg", "pooled_iou")}, rows[name]["per_class_iou"])
    return rows, len(loader.dataset)


def supernet_finished(checkpoint: Path, recipe) -> bool:
    """Whether the supernet run at `checkpoint` trained its whole budget under `recipe`."""
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.loop import finished
    from autonad.train.trainer import CHECKPOINT_FORMAT

    return checkpoint.exists() and finished(load_checkpoint(checkpoint, CHECKPOINT_FORMAT)["state"], recipe.train)


def supernet_split(search_run: Path) -> Path:
    """The split.json the search's supernet recorded (the search validated on it; test images were
    never seen by the supernet, the search or the export)."""
    model = json.loads((Path(search_run) / "model.json").read_text())
    return Path(model["supernet_checkpoint"]).parent / "split.json"


def searched_model_on_test(search_run: Path, dataset: str, seed: int = 0) -> tuple[dict, list[str], int]:
    """Every metric of a search's exported `model.ts` on the test split of its supernet's recorded
    split; the dataset's class names and the number of test images."""
    from autonad.data import open_dataset
    from autonad.export.inference import ExportedModel, evaluate_model

    source = open_dataset(dataset, seed=seed, split_file=supernet_split(search_run))
    test = evaluate_model(ExportedModel.load(Path(search_run) / "model.ts"), source, "test").to_dict()
    return test, list(source.classes), len(source.splits["test"])
