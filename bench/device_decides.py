"""The target device decides (the device issue): one trained supernet, `autonad search` with its
defaults for two devices, and each pick timed on both devices' tables.

With no latency weight the search keeps the (fitness, latency) Pareto front and returns the fastest
arch within `--tolerance` (1 mIoU point) of the best fitness, so the pick should follow the device:
each device's pick faster on its own table than the other device's pick (the issue asks >= 15%) at
no more than 1 point less fitness. Both picks are evaluated again with the same supernet and
validation images, so their fitness is compared like for like.

    python bench/device_decides.py --dataset folder:runs/thin_defects/data --skip-done
    python bench/device_decides.py --devices cpu-x86-2core cpu-x86-2core:onnxruntime --name device_decides_runtime

A device may name a runtime (`DEVICE:onnxruntime`): the same CPU's table timed as the exported
model.onnx runs, so the runtime's own pick is compared with eager PyTorch's.

Reuses the dataset's supernet when it is trained (the thin-defect bench trains it); each search
resumes; the JSON is written after each step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

DEVICES = ("cpu-x86-2core", "jetson-xavier-nx")
TARGET_SPEEDUP, MAX_FITNESS_LOSS = 1.15, 1.0  # the must-show: >= 15% faster at <= 1 point less


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="folder:runs/thin_defects/data")
    p.add_argument("--out", type=Path, default=Path("runs/device_decides"))
    p.add_argument("--devices", nargs=2, default=list(DEVICES), help="DEVICE or DEVICE:RUNTIME, two of them")
    p.add_argument("--name", default="device_decides")
    p.add_argument("--skip-done", action="store_true", help="keep the searches already finished in --out")
    p.add_argument("--refine", type=int, help="`autonad search --refine N` (default: the search's own, 1)")
    args = p.parse_args(argv)
    command = " ".join(["python bench/device_decides.py", *(argv if argv is not None else sys.argv[1:])])
    result = {"benchmark": "device_decides", "dataset": args.dataset, "command": command, "searches": {}}
    before = RESULTS / f"{args.name}.json"
    before = json.loads(before.read_text()) if before.exists() else {}  # read before the partial writes below
    for hw in args.devices:
        folder = args.out / (hw.replace(":", "-") + ("" if args.refine is None else f"-refine{args.refine}"))
        result["searches"][hw] = run_search(args.dataset, hw, folder, args.skip_done, args.refine)
        report(args.name, result)
    result.update(compare(args.dataset, args.devices, result["searches"], searched_picks(result["searches"])))
    unrefined = unrefined_picks(result["searches"])  # the same searches' picks before their refinement generation
    if unrefined:
        result["without_refinement"] = compare(args.dataset, args.devices, result["searches"], unrefined)
    result["earlier"] = earlier_results(before, result)
    report(args.name, result)
    return 0


def earlier_results(before: dict, now: dict) -> list[dict]:
    """The results the file held (`before`) for other supernets (kept, newest last), without their own history."""
    kept = before.get("earlier", [])
    supernet = next(iter(before.get("searches", {}).values()), {}).get("supernet")
    if "by_device" in before and supernet != next(iter(now["searches"].values()))["supernet"]:
        kept = [*kept, {k: v for k, v in before.items() if k != "earlier"}]
    return kept


def run_search(dataset: str, hw: str, out: Path, skip_done: bool, refine: int | None = None) -> dict:
    """`autonad search` with its defaults (no fine-tuning: the pick is what is compared), timed."""
    if not (skip_done and (out / "summary.yaml").exists()):
        device, runtime = split_target(hw)
        argv = ["autonad", "search", "--dataset", dataset, "--hw", device, "--runtime", runtime, "--no-finetune",
                "--out", str(out), *([] if refine is None else ["--refine", str(refine)])]  # fmt: skip
        if (out / "search_state.pt").exists():
            argv.append("--resume")
        start = time.monotonic()
        subprocess.run(argv, check=True)
        (out / "wall_s.txt").write_text(f"{time.monotonic() - start:.1f}\n")
    summary = yaml.safe_load((out / "summary.yaml").read_text())
    wall = out / "wall_s.txt"
    return {
        "run": str(out), "arch": summary["best"]["hash"], "fitness": summary["best"]["fitness"],
        "latency_ms": summary["best"]["latency_ms"], "why": summary["why"], "search": summary["search"],
        "hw": summary["hw"], "supernet": summary["supernet"],
        "evaluated": len((out / "history.jsonl").read_text().splitlines()),
        "wall_s": float(wall.read_text()) if wall.exists() else None,
    }  # fmt: skip


def split_target(hw: str) -> tuple[str, str]:
    """`cpu-x86-2core:onnxruntime` -> (device, runtime); a plain device name runs eager torch."""
    device, _, runtime = hw.partition(":")
    return device, runtime or "torch"


def searched_picks(searches: dict) -> dict:
    from autonad.space import Arch

    return {hw: Arch.load(Path(s["run"]) / "best_arch.yaml") for hw, s in searches.items()}


def unrefined_picks(searches: dict) -> dict:
    """Each search's pick among the evolution's candidates alone (what `--refine 0` returns: the same
    seed evaluates the same generations), or {} where a search ran no refinement."""
    from autonad.search.evolution import pick_best
    from autonad.search.outputs import load_history

    picks = {}
    for hw, s in searches.items():
        config = s["search"]
        if not config.get("refine") or config.get("selection") != "nsga2":
            return {}
        evolved = [c for c in load_history(Path(s["run"])) if c.generation < config["generations"]]
        picks[hw] = pick_best(evolved, "nsga2", config["tolerance"])[0].arch
    return picks


def compare(dataset: str, devices: list[str], searches: dict, picks: dict) -> dict:
    """Both picks timed on both tables and evaluated again on the same supernet and validation images."""
    from autonad.pipeline import predictor_for
    from autonad.search import EvalContext, EvalSettings
    from autonad.search.config import fitness_value, parse_fitness
    from autonad.train.trainer import load_trained_supernet

    first = searches[devices[0]]
    checkpoint = Path(first["supernet"])
    if any(Path(s["supernet"]) != checkpoint for s in searches.values()):
        raise SystemExit("the searches used different supernets: nothing to compare")
    trained = load_trained_supernet(checkpoint)
    size, classes = trained.recipe.input_size, len(trained.classes)
    settings = EvalSettings(checkpoint=str(checkpoint), dataset=dataset, val_images=first["search"]["val_images"])
    context = EvalContext(settings)
    weights = parse_fitness(first["search"]["fitness"])
    fitness = {hw: fitness_value(weights, context.evaluate(arch)) for hw, arch in picks.items()}
    rows = {}
    for hw in devices:
        other = next(d for d in devices if d != hw)
        device, runtime = split_target(hw)
        predictor = predictor_for(device, trained.net.space.name, size, 1, classes, runtime)
        own_ms, other_ms = predictor.predict(picks[hw]), predictor.predict(picks[other])
        loss = 100 * (fitness[other] - fitness[hw])  # fitness points this pick gives up against the other's
        rows[hw] = {
            "table": predictor.label, "pick": picks[hw].hash, "other_pick": picks[other].hash,
            "own_pick_ms": own_ms, "other_pick_ms": other_ms, "speedup": other_ms / own_ms,
            "fitness": fitness[hw], "other_fitness": fitness[other], "fitness_points_given_up": loss,
            "met": other_ms / own_ms >= TARGET_SPEEDUP and loss <= MAX_FITNESS_LOSS,
        }  # fmt: skip
        print(f"{hw}: own pick {own_ms:.2f} ms, the other's {other_ms:.2f} ms ({other_ms / own_ms:.2f}x); "
              f"fitness {100 * fitness[hw]:.1f} vs {100 * fitness[other]:.1f}")  # fmt: skip
    return {
        "different_archs": picks[devices[0]].hash != picks[devices[1]].hash,
        "input_size": list(size), "val_images": len(context.loader.dataset),
        "target": {"speedup": TARGET_SPEEDUP, "max_fitness_points_given_up": MAX_FITNESS_LOSS},
        "by_device": rows,
    }  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
