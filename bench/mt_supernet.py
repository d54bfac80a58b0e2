"""Magnetic Tile with the defaults (the learning issue): `autonad train-supernet --dataset mt` with
the shipped CPU recipe (a wall-clock budget, native-scale crops, defect-centred crops, a defect share
per batch), then the largest, smallest and a random subnet evaluated with inherited weights on the
test split (whole images), per class. Last round's supernet was background-only here.

    python bench/mt_supernet.py --data-root ../shared/datasets/magnetic_tile
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import inherited_on_test, report, run_autonad  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from autonad.pipeline import supernet_run_dir
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.recipe import Recipe, default_recipe
    from autonad.train.trainer import CHECKPOINT_FORMAT, load_trained_supernet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets/magnetic_tile")
    p.add_argument("--name", default="mt_supernet")
    args = p.parse_args(argv)
    recipe_name = default_recipe("mt")
    run = supernet_run_dir("mt", Recipe.load(recipe_name).supernet, recipe_name)
    argv_train = ["train-supernet", "--dataset", "mt", "--data-root", args.data_root]
    if (run / "checkpoint.pt").exists():
        argv_train.append("--resume")
    run_autonad(argv_train)
    trained = load_trained_supernet(run / "checkpoint.pt")
    state = load_checkpoint(run / "checkpoint.pt", CHECKPOINT_FORMAT)["state"]
    rows, test_images = inherited_on_test(run / "checkpoint.pt", "mt", args.data_root)
    result = {
        "benchmark": "mt_supernet", "recipe": trained.recipe.name, "run": str(run),
        "budget": {"minutes": trained.recipe.train.minutes, "steps": state["global_step"],
                   "elapsed_min": round(state["elapsed_s"] / 60, 1), "how": state.get("budget_note")},
        "test_images": test_images, "inherited": rows,
        "every_defect_class_above_zero_largest": all((v or 0) > 0 for k, v in
                                                     rows["largest"]["per_class_iou"].items() if k != "background"),
        "command": "python bench/mt_supernet.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    report(args.name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
