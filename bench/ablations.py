"""The paper's ablations at a CPU budget: search space (Table V), decoder (Table VI) and weight-sharing
mode (Table VII), each variant run through the real pipeline on a real dataset.

Every variant is a supernet definition: the tiny space restricted to some operator types (Table V,
cross sharing) or the full tiny space with another sharing mode (Table VII). For each one:
  1. a roofline latency table for its space is written (`autonad profile --roofline`), since the
     search needs one; the search itself is accuracy-only (`--objective score`), as in the tables;
  2. `autonad search` trains the supernet (recipe `neu-seg-ablation`) and runs the evolution;
  3. `autonad evaluate` scores the best subnet with its inherited weights on the test split;
  4. `autonad retrain` retrains it alone (from the supernet) and scores it on the test split.
Table VI retrains the full-space variant's best arch twice more with its searched MFAM swapped for
the fixed UPerNet decoder (`DecoderArch.upernet`) at the same width. Every step resumes or is skipped
when its output exists, so an interrupted benchmark continues.

    python bench/ablations.py --dataset neu-seg --data-root ../shared/datasets/neu_seg --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import yaml
from common import report, run_autonad

SPACES = {  # Table V: operator types allowed in every stage
    "conv": ("conv",), "transformer": ("transformer",), "mlp": ("mlp",), "conv+transformer": ("conv", "transformer"),
    "conv+mlp": ("conv", "mlp"), "transformer+mlp": ("transformer", "mlp"),
    "conv+transformer+mlp": ("transformer", "conv", "mlp"),
}  # fmt: skip
SHARING = ("cross", "entangled", "classical")  # Table VII
FULL = "conv+transformer+mlp"
METRICS = ("miou", "miou_fg", "mf1", "sample_miou", "seg_recall")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="neu-seg")
    p.add_argument("--data-root")
    p.add_argument("--recipe", default="neu-seg-ablation")
    p.add_argument("--base-space", default="tiny", help="the space the Table V variants restrict")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="+", help="variants to run (default: all; see --list)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--report-only", action="store_true", help="collect the finished variants, run nothing")
    p.add_argument("--out", type=Path, default=Path("runs/bench/ablations"))
    args = p.parse_args(argv)

    variants = [(f"space-{name}", ops, "cross") for name, ops in SPACES.items()]
    variants += [(f"sharing-{mode}", SPACES[FULL], mode) for mode in SHARING if mode != "cross"]
    if args.list:
        print("\n".join(v[0] for v in variants))
        return 0
    results = _previous(args.out)
    for name, ops, sharing in variants:
        if (args.only and name not in args.only) or (args.report_only and not _finished(args.out / name)):
            continue
        start = time.perf_counter()
        results[name] = {"ops": list(ops), "weight_sharing": sharing,
                         **run_variant(args, args.out / name, name, ops, sharing)}  # fmt: skip
        print(f"{name}: {json.dumps(results[name])} ({time.perf_counter() - start:.0f} s)", flush=True)
        write_json(args.out / "results.json", results)
    full = args.out / f"space-{FULL}"
    if _finished(full) and (not args.only or f"space-{FULL}" in args.only):
        if not args.report_only or (full / "retrain-upernet" / "metrics.json").exists():
            results["decoder-upernet"] = run_upernet(args, full)
    write_json(args.out / "results.json", results)
    command = "python bench/ablations.py " + " ".join(a for a in argv or [] if a != "--report-only")
    report("ablations", {"dataset": args.dataset, "recipe": args.recipe, "base_space": args.base_space,
                         "variants": results, "command": command})  # fmt: skip
    return 0


def run_variant(args, folder: Path, name: str, ops: tuple[str, ...], sharing: str) -> dict:
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.trainer import CHECKPOINT_FORMAT

    folder.mkdir(parents=True, exist_ok=True)
    space = write_space(args.base_space, ops, folder / "space" / f"{args.base_space}-{name}.yaml")
    supernet = write_supernet(args.base_space, space, sharing, folder / f"{args.base_space}-{name}.yaml")
    table = folder / "jetson.yaml"
    size = _recipe_size(args.recipe)
    if not table.exists():
        run_autonad(["profile", "--hw", "jetson-xavier-nx", "--roofline", "--search-space", str(space),
                  "--input-size", f"{size[0]}x{size[1]}", "--classes", "4", "--out", str(table)])  # fmt: skip
    data = ["--dataset", args.dataset] + (["--data-root", args.data_root] if args.data_root else [])
    search = folder / "search"
    timer = _Timer(folder / "times.json")
    if not (search / "summary.yaml").exists():
        with timer("search_s"):
            run_autonad(["search", *data, "--hw", str(table), "--recipe", args.recipe, "--supernet", str(supernet),
                      "--objective", "score", "--workers", "0", "--threads", str(args.threads), "--out", str(search),
                      "--no-finetune",  # inherited.json scores the inherited weights (Table VII)
                      *(["--resume"] if (search / "search_state.pt").exists() else [])])  # fmt: skip
    summary = yaml.safe_load((search / "summary.yaml").read_text())
    if not (folder / "inherited.json").exists():
        run_autonad(["evaluate", "--model", str(search / "model.ts"), *data, "--out", str(folder / "inherited.json")])
    retrained = retrain(args, search / "best_arch.yaml", Path(summary["supernet"]), folder / "retrain", data)
    ckpt = load_checkpoint(Path(summary["supernet"]), CHECKPOINT_FORMAT)
    inherited = json.loads((folder / "inherited.json").read_text())
    return {
        "arch": summary["best"]["hash"], "search_val_fitness": summary["best"]["metrics"]["miou"],
        "inherited": {k: inherited.get(k) for k in METRICS}, "retrained": {k: retrained.get(k) for k in METRICS},
        "supernet_hours": round(ckpt["state"]["elapsed_s"] / 3600, 3), "supernet_history": ckpt["history"],
        "search_s": timer.get("search_s"), "retrain_hours": retrained["train_hours"],
    }  # fmt: skip


def run_upernet(args, full: Path) -> dict:
    """Table VI: the full space's best encoder with the fixed UPerNet decoder, retrained the same way."""
    from autonad.space import Arch, DecoderArch

    summary = yaml.safe_load((full / "search" / "summary.yaml").read_text())
    searched = Arch.load(full / "search" / "best_arch.yaml")
    arch = dataclasses.replace(searched, decoder=DecoderArch.upernet(searched.decoder.width))
    arch_file = full / "upernet_arch.yaml"
    arch.save(arch_file)
    data = ["--dataset", args.dataset] + (["--data-root", args.data_root] if args.data_root else [])
    retrained = retrain(args, arch_file, Path(summary["supernet"]), full / "retrain-upernet", data)
    return {"arch": arch.hash, "encoder_of": searched.hash, "decoder": arch.decoder.to_dict(),
            "retrained": {k: retrained.get(k) for k in METRICS}, "retrain_hours": retrained["train_hours"]}  # fmt: skip


def retrain(args, arch: Path, supernet: Path, out: Path, data: list[str]) -> dict:
    if not (out / "metrics.json").exists():
        run_autonad(["retrain", "--arch", str(arch), *data, "--recipe", args.recipe, "--supernet", str(supernet),
                  "--no-cap", "--threads", str(args.threads), "--out", str(out), "--format", "torchscript",
                  *(["--resume"] if (out / "checkpoint.pt").exists() else [])])  # fmt: skip
    return {**json.loads((out / "metrics.json").read_text()), "train_hours": round(_elapsed_s(out) / 3600, 3)}


def write_space(base: str, ops: tuple[str, ...], path: Path) -> Path:
    """The base space with only `ops` in every stage (its decoder choices unchanged)."""
    from autonad import resources

    space = yaml.safe_load(resources.resolve("search_spaces", base).read_text())
    space["name"] = path.stem
    space["description"] = f"{base} space, block operators {'+'.join(ops)} only (Table V ablation)"
    for stage in space["stages"]:
        stage["ops"] = list(ops)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path.resolve()


def write_supernet(base: str, space: Path, sharing: str, path: Path) -> Path:
    from autonad import resources

    supernet = yaml.safe_load(resources.resolve("supernets", base).read_text())
    supernet.update(name=path.stem, search_space=str(space), weight_sharing=sharing,
                    description=f"{base} supernet on {space.stem}, {sharing} weight sharing")  # fmt: skip
    path.write_text(yaml.safe_dump(supernet, sort_keys=False))
    return path.resolve()


class _Timer:
    """Wall-clock seconds of steps, kept in a JSON file so a skipped (finished) step still reports them."""

    def __init__(self, path: Path):
        self.path = path
        self.times = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str) -> float | None:
        return self.times.get(key)

    def __call__(self, key: str):
        import contextlib

        @contextlib.contextmanager
        def timed():
            start = time.perf_counter()
            yield
            self.times[key] = round(self.times.get(key, 0.0) + time.perf_counter() - start, 1)
            write_json(self.path, self.times)

        return timed()


def _recipe_size(name: str) -> tuple[int, int]:
    from autonad.train.recipe import Recipe

    return tuple(Recipe.load(name).input_size)


def _elapsed_s(run: Path) -> float:
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.subnet import RETRAIN_FORMAT

    return float(load_checkpoint(run / "checkpoint.pt", RETRAIN_FORMAT)["state"]["elapsed_s"])


def _finished(variant: Path) -> bool:
    return (variant / "retrain" / "metrics.json").exists() and (variant / "inherited.json").exists()


def _previous(out: Path) -> dict:
    path = out / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
