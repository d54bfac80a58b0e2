"""The README's main job (the learning issue: it must segment all three synthetic defect classes):
`autonad search --dataset synthetic --hw cpu --latency-weight 0.005 --resume` as a newcomer runs it,
timed, then its exported model (fine-tuned from inherited weights when the recipe says so) evaluated
per class on the test split of the supernet's recorded split, whole images. A finished run is reused
(its wall time is then the one recorded the first time); a result of other defaults (supernet,
fine-tuning) is kept under `earlier`.

    python bench/demo.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report, run_autonad, searched_model_on_test  # noqa: E402

MAIN_JOB = ["search", "--dataset", "synthetic", "--hw", "cpu", "--latency-weight", "0.005", "--resume"]
RUN = Path("runs/search/synthetic__cpu-x86-2core__demo")
METRICS = ("miou", "miou_fg", "pooled_iou", "sample_miou", "seg_recall", "per_class_iou")


def main(argv: list[str] | None = None) -> int:
    from autonad.train.recipe import Recipe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="demo")
    args = p.parse_args(argv)
    path = RESULTS / f"{args.name}.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    fresh = not (RUN / "model.json").exists()
    start = time.monotonic()
    run_autonad(MAIN_JOB)
    wall = time.monotonic() - start if fresh else earlier.get("wall_s")
    model_meta = json.loads((RUN / "model.json").read_text())
    recipe = Recipe.load("demo")
    test, classes, test_images = searched_model_on_test(RUN, "synthetic", seed=recipe.train.seed)
    defect_classes = classes[1:]
    finetune = recipe.search.finetune_steps
    history = earlier.pop("earlier", [])
    if earlier and (earlier.get("supernet"), earlier.get("finetune_steps")) != (recipe.supernet, finetune):
        history.append(earlier)
    result = {
        "benchmark": "demo", "command": "autonad " + " ".join(MAIN_JOB), "run": str(RUN),
        "recipe": recipe.name, "supernet": recipe.supernet, "budget_steps": recipe.train.steps,
        "finetune_steps": finetune, "inherited_val": model_meta.get("inherited_metrics"),
        "space_decoder": json.loads(model_meta["search_space_def"])["decoder"],
        "wall_s": None if wall is None else round(wall, 1), "arch": model_meta.get("arch_hash"),
        "latency_ms": model_meta.get("latency_ms"), "test_images": test_images,
        "test": {k: test.get(k) for k in METRICS},
        "every_defect_class_above_zero": all((test["per_class_iou"][c] or 0) > 0 for c in defect_classes),
        **({"earlier": history} if history else {}),
    }  # fmt: skip
    report(args.name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
