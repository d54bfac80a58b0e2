"""The paper's latency prior from training records (device issue; paper IV-D, Fig. 5).

Trains the demo supernet (tiny-fine, synthetic data) for `--steps` steps with a latency record of
the sampled subnet every `--every` steps (batch 1, on this CPU, as the trainer times it), fits the
prior's op costs to those records (`autonad latency prior --records`) and sets them beside the costs
the measured `cpu` table gives the same space: per block position and MFAM edge, Kendall tau of
the two cost orders and whether both call the same op the cheapest. Writes both heatmaps.

    python bench/prior_records.py                  # ~6 min on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import yaml
from common import report, run_autonad

from autonad.latency.prior import LatencyPrior
from autonad.latency.table import load_profile
from autonad.pipeline import latency_records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=2, help="steps between latency records")
    p.add_argument("--out", type=Path, default=Path("runs/prior_records"))
    p.add_argument("--name", default="prior_records")
    args = p.parse_args(argv)
    command = " ".join(["python bench/prior_records.py", *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    recipe = args.out / "demo-records.yaml"
    recipe.write_text(yaml.safe_dump({"base": "demo", "name": "demo-records",
                                      "train": {"steps": args.steps, "latency_every": args.every}}))  # fmt: skip
    run = args.out / "supernet"
    run_autonad(["train-supernet", "--dataset", "synthetic", "--recipe", str(recipe), "--out", str(run)])
    space, records = latency_records(run / "checkpoint.pt")
    fitted = LatencyPrior.from_records(records, space)
    device, profile = load_profile("cpu", space.name, (128, 128))
    table = LatencyPrior.from_profile(profile, space, source=f"table {device} ({profile.provenance})")
    genes = [g for g in space.genes if g.name in fitted.costs and len(g.choices) > 1]
    rows = [_agreement(g.name, g.choices, fitted.costs[g.name], table.costs[g.name]) for g in genes]
    images = {}
    for label, prior in (("records", fitted), ("table", table)):
        images[label] = str(args.out / f"prior_{label}.png")  # relative to the repository, where it runs
        prior.heatmap(images[label])
    blocks = [r for r in rows if not r["gene"].startswith("dec.")]
    result = {
        "command": command,
        "search_space": space.name,
        "records": len(records),
        "timed_on": records[-1]["device"],
        "record_input": records[-1]["input_size"],
        "table": f"{device} {profile.signature} ({profile.hardware})",
        "genes": rows,
        "block_mean_tau": statistics.fmean(r["kendall_tau"] for r in blocks),
        "edge_mean_tau": statistics.fmean(r["kendall_tau"] for r in rows if r not in blocks),
        "same_cheapest": sum(r["same_cheapest"] for r in rows) / len(rows),
        "images": images,
    }
    report(args.name, result)
    return 0


def _agreement(gene: str, choices, fitted: dict, table: dict) -> dict:
    from scipy.stats import kendalltau

    a, b = [fitted[c] for c in choices], [table[c] for c in choices]
    return {"gene": gene, "records_ms": dict(zip(choices, a)), "table_ms": dict(zip(choices, b)),
            "kendall_tau": float(kendalltau(a, b).statistic),
            "same_cheapest": min(choices, key=fitted.get) == min(choices, key=table.get)}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
