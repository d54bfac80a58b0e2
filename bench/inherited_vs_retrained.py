"""Does the supernet rank subnets like retraining does? (SPEC section 9; paper Table VII's question)

N subnets are drawn uniformly (seeded) from the demo supernet's space. Each is scored twice on the
same validation images: with weights inherited from the supernet (what the search uses), and after
retraining it alone (`SubnetTrainer`, init from the supernet, the recipe's `retrain` settings for
E epochs; best validation epoch). The Kendall tau of the two rankings says how far the search's
cheap estimate can be trusted. Retraining runs resume, so an interrupted benchmark continues.

    python bench/inherited_vs_retrained.py                     # 10 subnets x 5 epochs, demo supernet
    python bench/inherited_vs_retrained.py --subnets 12 --epochs 10 --metric sample_miou
    python bench/inherited_vs_retrained.py --name inherited_vs_retrained_neu --dataset neu-seg \\
        --data-root ../shared/datasets/neu_seg --recipe neu-seg-ablation --epochs 1 \\
        --checkpoint runs/supernet/neu-seg__tiny-space-conv+transformer+mlp__neu-seg-ablation/checkpoint.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import time
from pathlib import Path

from common import DEMO_CHECKPOINT, report, require_checkpoint


def main(argv: list[str] | None = None) -> int:
    import torch
    from scipy.stats import kendalltau

    from autonad.data import SegmentationDataset, Transform, eval_loader, open_dataset
    from autonad.space import HeadsArch
    from autonad.train.evaluate import accumulate_arch
    from autonad.train.recipe import Recipe
    from autonad.train.subnet import RetrainJob
    from autonad.train.trainer import load_trained_supernet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    p.add_argument("--dataset", default="synthetic", help="the dataset the supernet was trained on")
    p.add_argument("--data-root")
    p.add_argument("--recipe", help="recipe whose `retrain` section to use (default: the supernet's recipe by name)")
    p.add_argument("--subnets", type=int, default=10)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--metric", default="miou", choices=("miou", "miou_fg", "mf1", "sample_miou", "seg_recall"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="run folder (default: runs/bench/<name>)")
    p.add_argument("--name", default="inherited_vs_retrained", help="results file bench/results/<name>.json")
    args = p.parse_args(argv)
    args.out = args.out or Path("runs/bench") / args.name
    require_checkpoint(args.checkpoint)
    torch.set_num_threads(args.threads)

    trained = load_trained_supernet(args.checkpoint)
    split = args.checkpoint.parent / "split.json"
    source = open_dataset(args.dataset, args.data_root, split_file=split)
    norm = trained.normalisation
    transform = dataclasses.replace(trained.recipe.transform, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
    val = SegmentationDataset(source, "val", Transform(transform, train=False))
    loader = eval_loader(val, 8)
    rng = random.Random(args.seed)
    archs = [trained.net.space.sample(rng, heads=HeadsArch(cap=False)) for _ in range(args.subnets)]
    settings = Recipe.load(args.recipe or trained.recipe.name).retrain  # the shipped recipe's retraining
    recipe = dataclasses.replace(trained.recipe, retrain=dataclasses.replace(
        settings, epochs=args.epochs, select=args.metric, val_images=None))  # fmt: skip

    rows = []
    for i, arch in enumerate(archs):
        inherited = accumulate_arch(trained.net, arch, loader, source.classes, torch.device("cpu")).compute().to_dict()
        run = args.out / arch.hash
        run.mkdir(parents=True, exist_ok=True)
        if not (run / "split.json").exists():
            shutil.copy(split, run / "split.json")  # the supernet's split: the same validation images
        start = time.perf_counter()
        job = RetrainJob(arch, trained.config, recipe, args.checkpoint)
        state = job.trainer(source, run).fit(resume=(run / "checkpoint.pt").exists())
        seconds = round(time.perf_counter() - start, 1)
        rows.append({"arch": arch.hash, "inherited": inherited[args.metric], "retrained": state.best["value"],
                     "best_epoch": state.best["epoch"], "retrain_s": seconds})  # fmt: skip
        print(f"{i + 1}/{len(archs)} {arch.hash}: inherited {rows[-1]['inherited']:.4f} "
              f"retrained {rows[-1]['retrained']:.4f}", flush=True)  # fmt: skip
    tau, p_value = kendalltau([r["inherited"] for r in rows], [r["retrained"] for r in rows])
    report(args.name, {
        "supernet": str(args.checkpoint), "dataset": source.name, "metric": args.metric, "subnets": len(rows),
        "retrain_epochs": args.epochs, "kendall_tau": round(float(tau), 4), "p_value": round(float(p_value), 4),
        "rows": rows, "command": "python bench/inherited_vs_retrained.py " + " ".join(argv or []),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
