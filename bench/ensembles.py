"""A 3-member ensemble of searched subnets vs the best single searched subnet (issue 20, paper 004's
experts), on one dataset, over seeds.

Stages, each resumed where it stopped (the JSON is written after every finished piece):
  1. the dataset's supernet (`autonad train-supernet` with the recipe; shared with bench/pipeline.py);
  2. one search for `--hw` (`autonad search --no-finetune`);
  3. per seed (the retraining seed; the split stays the supernet's): the search's best arch and every
     ensemble member retrained from the supernet for `--steps` (each distinct arch once per seed), then
     two ensembles (`autonad ensemble --members`, weights tuned on validation): at equal total predicted
     latency (members picked with their summed latency at most the single's) and at free latency.
Figures on test: mIoU, the two tail classes' IoU (the defect classes with the fewest test pixels),
Seg_Recall/Precision and the predicted latency on the search's table (an ensemble's: its members' sum).

    python bench/ensembles.py --dataset neu-seg --data-root ../shared/datasets/neu_seg --recipe neu-seg-cpu \\
        --seeds 0 1 2 --steps 600
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml
from common import load_result, mean_sd, report, run_autonad, supernet_finished

K = 3
VARIANTS = ("single", "equal_latency", "free_latency")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root")
    p.add_argument("--recipe", required=True)
    p.add_argument("--hw", default="cpu", help="the device searched for (its table prices the members)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=600, help="retraining optimiser steps of every model")
    p.add_argument(
        "--supernet-steps",
        type=int,
        help="the supernet's budget in optimiser steps instead of the recipe's (one session's CPU time)",
    )
    p.add_argument("--threads", type=int, default=2)
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    if args.supernet_steps is not None and args.supernet_steps < 1:
        p.error(f"--supernet-steps must be at least 1, got {args.supernet_steps}")

    from autonad.pipeline import dataset_slug, supernet_run_dir
    from autonad.train.recipe import Recipe

    recipe = Recipe.load(args.recipe).with_budget("train", steps=args.supernet_steps)
    slug = dataset_slug(args.dataset)
    out = Path("runs/bench/ensembles") / f"{slug}__{recipe.name}"
    out.mkdir(parents=True, exist_ok=True)
    if args.supernet_steps is not None:  # every stage reads the recipe with that budget (and its name)
        args.recipe = str(out / f"{recipe.name}.yaml")  # its stem names the supernet's run folder
        Path(args.recipe).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    name = f"ensembles_{slug}"
    data = ["--dataset", args.dataset] + (["--data-root", args.data_root] if args.data_root else [])
    threads = ["--threads", str(args.threads)]
    done = load_result(name)
    same = done.get("steps") == args.steps and done.get("hw") == args.hw and done.get("recipe") == recipe.name
    state = {"stage": "supernet", "seeds": done.get("seeds", {}) if same else {}}
    if same and "search" in done:
        state["search"] = done["search"]
    _write(name, args, recipe, state, argv)

    checkpoint = supernet_run_dir(args.dataset, recipe.supernet, recipe.name) / "checkpoint.pt"
    if not supernet_finished(checkpoint, recipe):
        run_autonad(["train-supernet", *data, "--recipe", args.recipe, *threads,
                  *(["--resume"] if checkpoint.exists() else [])])  # fmt: skip
    search = out / f"search-{args.hw}"
    if not (search / "summary.yaml").exists():
        state["stage"] = "search"
        _write(name, args, recipe, state, argv)
        run_autonad(["search", *data, "--hw", args.hw, "--recipe", args.recipe, *threads, "--out", str(search),
                  "--no-finetune", *(["--resume"] if (search / "search_state.pt").exists() else [])])  # fmt: skip
    if state.get("search", {}).get("best") != _search_summary(search)["best"]:
        state["seeds"] = {}  # measured on another search
    state.update(stage="seeds", search=_search_summary(search))
    for seed in args.seeds:
        row = state["seeds"].setdefault(str(seed), {})
        if all(v in row for v in VARIANTS):
            continue
        folder = out / f"seed{seed}-{args.hw}-{args.steps}steps"
        _seed(
            args, data, threads, search, checkpoint, folder, seed, row, lambda: _write(name, args, recipe, state, argv)
        )
        _write(name, args, recipe, state, argv)
    finished = all(all(v in state["seeds"].get(str(seed), {}) for v in VARIANTS) for seed in args.seeds)
    state["stage"] = "done" if finished else "seeds"
    _write(name, args, recipe, state, argv)
    return 0


def _search_summary(search: Path) -> dict:
    summary = yaml.safe_load((search / "summary.yaml").read_text())
    return {"run": str(search), "best": summary["best"]["hash"], "hw": summary["hw"], "search": summary["search"]}


def _seed(args, data, threads, search, checkpoint, out: Path, seed: int, row: dict, progress) -> None:
    """The single best and both ensembles of one retraining seed, filled into `row` as each finishes."""
    from autonad.errors import AutoNADError
    from autonad.search.outputs import load_history, pick_members

    history = load_history(search)
    best = next(c for c in history if c.hash == _search_summary(search)["best"])
    picks: dict[str, list | str] = {"single": [best]}
    for variant, budget in (("equal_latency", best.latency_ms), ("free_latency", None)):
        try:
            picks[variant] = pick_members(history, K, budget)
        except AutoNADError as e:
            picks[variant] = str(e)  # no K diverse archs within the single's latency: reported as such
    recipe_file = _seed_recipe(args.recipe, out, seed)
    for variant, members in picks.items():
        if variant in row:
            continue
        if isinstance(members, str):
            row[variant] = {"infeasible": members}
            continue
        runs = [_retrain(c, data, threads, recipe_file, checkpoint, out, args.steps) for c in members]
        if variant == "single":
            row[variant] = _metrics_row(runs[0] / "metrics.json", [best])
        else:
            target = out / variant
            if not (target / "model.json").exists():
                run_autonad(["ensemble", "--members", *map(str, runs), *data, "--out", str(target), "--format",
                          "torchscript", *threads])  # fmt: skip
            row[variant] = _metrics_row(target / "model.json", members)
        progress()


def _seed_recipe(base: str, out: Path, seed: int) -> Path:
    """The recipe with this retraining seed (the split's seed, in its train section, is left alone)."""
    from autonad.train.recipe import Recipe

    recipe = Recipe.load(base).to_dict()  # its `base:` chain resolved
    recipe["name"] = f"{recipe['name']}-ensembles-s{seed}"
    recipe["retrain"] = {**recipe.get("retrain", {}), "seed": seed}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _retrain(candidate, data, threads, recipe: Path, checkpoint: Path, out: Path, steps: int) -> Path:
    """The candidate's arch retrained from the supernet (once per seed, shared by every variant)."""
    run = out / "archs" / candidate.hash[:8]
    if (run / "metrics.json").exists():
        return run
    run.mkdir(parents=True, exist_ok=True)
    candidate.arch.save(run / "arch.yaml")
    resume = ["--resume"] if (run / "checkpoint.pt").exists() else []
    run_autonad(["retrain", "--arch", str(run / "arch.yaml"), *data, "--recipe", str(recipe), "--supernet",
              str(checkpoint), "--steps", str(steps), "--no-cap", *threads, "--out", str(run), "--format",
              "torchscript", "--no-tensorboard", *resume])  # fmt: skip
    return run


def _metrics_row(path: Path, members) -> dict:
    meta = json.loads(path.read_text())
    m = meta.get("metrics", meta)
    gt_pixels = {c: sum(row) for c, row in zip(m["class_names"], m["confusion"])}
    tail = sorted(list(gt_pixels)[1:], key=lambda c: gt_pixels[c])[:2]
    tail_iou = [m["per_class_iou"][c] for c in tail if m["per_class_iou"][c] is not None]
    return {"members": [c.hash for c in members], "latency_ms": sum(c.latency_ms or 0.0 for c in members),
            "miou": m["miou"], "tail_classes": tail, "tail_iou": statistics.fmean(tail_iou) if tail_iou else None,
            "per_class_iou": m["per_class_iou"], "seg_recall": m["seg_recall"],
            "seg_precision": m["seg_precision"]}  # fmt: skip


def _summary(seeds: dict) -> dict:
    out = {}
    for variant in VARIANTS:
        rows = [r[variant] for r in seeds.values() if "miou" in r.get(variant, {})]
        out[variant] = {k: mean_sd([r[k] for r in rows])
                        for k in ("miou", "tail_iou", "seg_recall", "seg_precision", "latency_ms")}  # fmt: skip
        infeasible = [r[variant]["infeasible"] for r in seeds.values() if "infeasible" in r.get(variant, {})]
        if infeasible:
            out[variant]["infeasible"] = infeasible[0]
    return out


def _write(name: str, args, recipe, state: dict, argv) -> None:
    command = "python bench/ensembles.py " + " ".join(argv)
    report(name, {"dataset": args.dataset, "recipe": recipe.name, "input_size": list(recipe.input_size),
                  "hw": args.hw, "k": K, "steps": args.steps, "supernet_steps": args.supernet_steps,
                  "seeds_planned": args.seeds, **state,
                  "summary": _summary(state["seeds"]), "partial": state["stage"] != "done",
                  "command": command})  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
