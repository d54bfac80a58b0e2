"""Thin defects end to end (the learning issue): `autonad search --dataset folder:ROOT --hw cpu` with
its defaults on a generated thin-defect dataset (`thin_defects.py`: 80 images of 480x320, scratches
1-3 px wide, small pits), against a plain U-Net trained for the same wall time.

  1. generate the dataset (skipped when it exists);
  2. `autonad search` with the defaults (supernet budget, crops, search budget), timed; its exported
     model (inherited weights) is evaluated on the test split;
  3. a U-Net trained from scratch by the same loop with `--budget` = the search's wall time, its best
     validation checkpoint evaluated on the same test split.

Every step resumes; the JSON is written after each.

    python bench/thin_defect_search.py --out runs/thin_defects
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, inherited_on_test, report, run_autonad, searched_model_on_test, supernet_split  # noqa: E402
from thin_defects import write_thin_defects  # noqa: E402

METRICS = ("miou", "miou_fg", "pooled_iou", "mf1", "sample_miou", "seg_recall", "per_class_iou")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/thin_defects"))
    p.add_argument("--n", type=int, default=80)
    p.add_argument("--unet-base", type=int, default=16, help="U-Net widths base * (1, 2, 4, 8, 16)")
    p.add_argument("--name", default="thin_defect_search")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="search again with today's defaults (the earlier result is kept under 'earlier')",
    )
    args = p.parse_args(argv)
    root = args.out / "data"
    if not (root / "classes.txt").exists():
        write_thin_defects(root, n=args.n)
    dataset = f"folder:{root}"
    path = RESULTS / f"{args.name}.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    command = " ".join(["python bench/thin_defect_search.py", *(argv if argv is not None else sys.argv[1:])])
    data = {"generator": "bench/thin_defects.py", "images": args.n, "size": "480x320"}
    result.update({"benchmark": "thin_defect_search", "dataset": data, "command": command})
    supernet, finetune = default_supernet(dataset), default_finetune(dataset)
    defaults, unet_sha = defaults_fingerprint(dataset), unet_fingerprint(dataset)
    done = result.get("search", {})
    if args.rerun and done.get("defaults_sha") != defaults:  # the recipe holds the supernet and fine-tuning too
        unet = result.get("unet")
        result.setdefault("earlier", []).append(
            {k: result.pop(k) for k in ("search", "unet", "summary") if k in result}
        )
        if unet and unet.get("settings_sha") == unet_sha:  # trained the same way: kept if the wall time matches
            result["unet"] = unet
    if "search" not in result:
        tag = ""
        if finetune:
            tag = f"-ft{finetune['minutes']:g}m" if finetune["minutes"] else f"-ft{finetune['steps']}s"
        result["search"] = run_search(dataset, args.out / f"search-{supernet}{tag}-{defaults}")
        report(args.name, result)
    for search in [run["search"] for run in [*result.get("earlier", []), result] if "search" in run]:
        if "inherited" not in search and (Path(search["run"]) / "model.json").exists():
            search["inherited"] = inherited_subnets(search["run"], dataset)
            report(args.name, result)
    result["dataset"]["split"] = split_sizes(result["search"]["run"])
    wall_s = result["search"]["wall_s"]
    if "unet" in result and abs(result["unet"]["budget_minutes"] * 60 - wall_s) > 0.1 * wall_s:
        del result["unet"]  # trained for another search's wall time
    if "unet" not in result:
        out = args.out / f"unet-{round(wall_s / 60)}m-{unet_sha}"
        result["unet"] = {**run_unet(dataset, root, out, wall_s, args.unet_base), "settings_sha": unet_sha}
        report(args.name, result)
    s, u = result["search"]["test"], result["unet"]["test"]
    result["summary"] = {
        "searched_defect_iou": s["miou_fg"], "unet_defect_iou": u["miou_fg"],
        "searched_pooled_iou": s["pooled_iou"], "unet_pooled_iou": u["pooled_iou"],
        "wall_s": result["search"]["wall_s"],
    }  # fmt: skip
    report(args.name, result)
    return 0


def inherited_subnets(search_run: str, dataset: str) -> dict[str, dict]:
    """The largest, smallest and a random subnet of the search's supernet on the test split."""
    rows, _ = inherited_on_test(supernet_split(search_run).parent / "checkpoint.pt", dataset)
    return rows


def split_sizes(search_run: str) -> dict[str, int]:
    """Images per split of the supernet's recorded split (the search validates on 'val')."""
    split = json.loads(supernet_split(search_run).read_text())["splits"]
    return {name: len(ids) for name, ids in split.items()}


def default_supernet(dataset: str) -> str:
    from autonad.train.recipe import Recipe, default_recipe

    return Recipe.load(default_recipe(dataset)).supernet


def unet_fingerprint(dataset: str) -> str:
    """A short hash of what the U-Net's training takes from the default recipe (data settings and the
    `retrain` section, without its budget, which the search's wall time sets): the U-Net is trained
    again, in a folder of its own, when it changed."""
    from autonad.train.loop import training_part
    from autonad.train.recipe import Recipe, default_recipe

    part = training_part(Recipe.load(default_recipe(dataset)).to_dict(), "retrain")
    part["retrain"] = {k: v for k, v in part["retrain"].items() if k not in ("epochs", "minutes", "steps")}
    return _fingerprint(part)


def defaults_fingerprint(dataset: str) -> str:
    """... of the default recipe and the search's default settings (objective, tolerance, ...): a rerun
    searches again when any of them changed, in a folder of its own."""
    from autonad.search import SearchConfig

    return _fingerprint({**_recipe_settings(dataset), "search_defaults": SearchConfig().to_dict()})


def _recipe_settings(dataset: str) -> dict:
    from autonad.train.recipe import Recipe, default_recipe

    return {k: v for k, v in Recipe.load(default_recipe(dataset)).to_dict().items() if k not in ("name", "description")}


def _fingerprint(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]


def default_finetune(dataset: str) -> dict | None:
    """The default recipe's fine-tuning budget of the searched arch (None: it exports inherited weights)."""
    from autonad.train.recipe import Recipe, default_recipe

    search = Recipe.load(default_recipe(dataset)).search
    return {"minutes": search.finetune_minutes, "steps": search.finetune_steps} if search.finetunes else None


def supernet_state(checkpoint: Path) -> dict:
    """The training state the supernet's checkpoint recorded (seconds trained, bf16 fall-back step)."""
    from autonad.train.trainer import CHECKPOINT_FORMAT

    return run_state(checkpoint, CHECKPOINT_FORMAT)


def run_state(checkpoint: Path, fmt: str) -> dict:
    from autonad.train.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint, fmt)["state"]


def precision(recipe_name: str, checkpoint: Path, finetune_checkpoint: Path | None = None) -> str:
    """How the supernet and the fine-tuning computed: `bf16`, `fp32`, `bf16 (fp32 from step N)`."""
    from autonad.timing import cpu_bf16
    from autonad.train.recipe import Recipe
    from autonad.train.subnet import RETRAIN_FORMAT
    from autonad.train.trainer import CHECKPOINT_FORMAT

    recipe, native = Recipe.load(recipe_name), cpu_bf16()

    def stage(on: bool, path: Path | None, fmt: str) -> str:
        since = run_state(path, fmt).get("fp32_since") if path is not None and path.exists() else None
        return ("bf16" if on and native else "fp32") + (f" (fp32 from step {since})" if since else "")

    supernet = stage(recipe.train.cpu_bf16, checkpoint, CHECKPOINT_FORMAT)
    return f"supernet {supernet}, fine-tuning {stage(recipe.retrain.cpu_bf16, finetune_checkpoint, RETRAIN_FORMAT)}"


def run_search(dataset: str, out: Path) -> dict:
    from autonad.pipeline import supernet_run_dir
    from autonad.train.recipe import Recipe, default_recipe

    recipe = default_recipe(dataset)
    checkpoint = supernet_run_dir(dataset, Recipe.load(recipe).supernet, recipe) / "checkpoint.pt"
    reused = checkpoint.exists() and not (out / "search_state.pt").exists()
    # a supernet trained by an earlier run: its time counts too
    before = float(supernet_state(checkpoint)["elapsed_s"]) if reused else 0.0
    start = time.monotonic()
    argv = ["search", "--dataset", dataset, "--hw", "cpu", "--out", str(out)]
    if (out / "search_state.pt").exists():
        argv.append("--resume")
    run_autonad(argv)
    wall = time.monotonic() - start + before
    summary = json.loads((out / "model.json").read_text())
    test, _, _ = searched_model_on_test(out, dataset)
    return {"run": str(out), "wall_s": round(wall, 1), "command": "autonad " + " ".join(argv[:6]),
            "supernet_reused_s": round(before, 1), "recipe": summary.get("recipe"),
            "supernet": default_supernet(dataset), "finetune": default_finetune(dataset),
            "defaults_sha": defaults_fingerprint(dataset),
            "precision": precision(recipe, checkpoint, finetune_path(out, summary)),
            "arch": summary.get("arch_hash"), "scale": summary.get("scale"),
            "finetuned": finetuned(summary), "inherited_val": summary.get("inherited_metrics"),
            "space_decoder": json.loads(summary["search_space_def"])["decoder"],
            "test": {k: test.get(k) for k in METRICS}}  # fmt: skip


def finetune_path(out: Path, summary: dict) -> Path | None:
    return out / summary["finetune_run"] / "checkpoint.pt" if summary.get("finetune_run") else None


def finetuned(summary: dict) -> dict | None:
    """The fine-tuning the exported model came from, as model.json records it (None: inherited weights)."""
    if not summary.get("finetune_run"):
        return None
    return {k: summary.get(k) for k in ("finetune_run", "recipe", "best_epoch", "selected_by")}


def run_unet(dataset: str, root: Path, out: Path, wall_s: float, base: int) -> dict:
    from autonad.data import open_dataset
    from autonad.export.inference import ExportedModel, evaluate_model
    from autonad.train.baseline import UNetTrainer, load_trained_unet
    from autonad.train.recipe import Recipe, default_recipe

    recipe = Recipe.load(default_recipe(dataset))
    recipe = recipe.with_budget("retrain", minutes=wall_s / 60)
    recipe = dataclasses.replace(recipe, retrain=dataclasses.replace(recipe.retrain, cap=False))
    source = open_dataset(dataset, seed=recipe.retrain.seed)
    widths = tuple(base * 2**i for i in range(5))
    start = time.monotonic()
    UNetTrainer(recipe, source, out, widths).fit(resume=(out / "checkpoint.pt").exists())
    trained = load_trained_unet(out / "best.pt")
    test = evaluate_model(ExportedModel(trained.net, trained.meta, out / "best.pt"), source, "test").to_dict()
    return {"run": str(out), "widths": list(widths), "budget_minutes": round(wall_s / 60, 2),
            "wall_s": round(time.monotonic() - start, 1), "test": {k: test.get(k) for k in METRICS}}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
