"""Run the benchmark suite (`make bench`): every benchmark of SPEC section 9 and issue 8, in order,
each printing its figures and writing bench/results/<name>.json; then `make results` renders
docs/results.md from those files (bench/report.py).

The real-data benchmarks take hours on 2 CPU cores (the budget of each is in its entry), and they
resume: an interrupted suite continues where it stopped. `--skip-done` skips benchmarks whose JSON
exists; `--only NAME ...` runs some. The demo supernet the synthetic benchmarks use is the README's
main job, run first when it is missing.

    python bench/run_all.py --list
    python bench/run_all.py --data ../shared/datasets --skip-done
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import DEMO_CHECKPOINT, RESULTS

BENCH = Path(__file__).resolve().parent
MT_ARCH = "runs/search/mt__cpu-x86-2core__mt-cpu/best_arch.yaml"  # written by the MT pipeline's cpu search
NEU_TINY = "runs/supernet/neu-seg__tiny-space-conv+transformer+mlp__neu-seg-ablation/checkpoint.pt"  # by ablations


@dataclass(frozen=True)
class Benchmark:
    name: str  # its JSON: bench/results/<name>.json
    script: str
    args: tuple[str, ...]  # {data} is the datasets folder
    budget: str  # what it costs on the 2-core CPU machine

    def command(self, data: str = "../shared/datasets") -> list[str]:
        return ["python", f"bench/{self.script}", *(a.format(data=data) for a in self.args)]


SUITE = (
    Benchmark("demo", "demo.py", (), "~5 min: the README's main job, its exported model per class on the test split"),
    Benchmark("supernet_overhead", "supernet_overhead.py", (), "~10 min"),
    Benchmark("latency_predictor", "latency_predictor.py", ("--hw", "cpu", "--search-space", "tiny"), "~5 min"),
    Benchmark("latency_predictor_autonad", "latency_predictor.py", ("--name", "latency_predictor_autonad", "--hw",
              "cpu"),
              "~10 min: 100 Table I subnets timed twice at 128x128"),
    Benchmark("latency_predictor_fine", "latency_predictor.py", ("--name", "latency_predictor_fine",
              "--search-space", "autonad-fine", "--no-ceiling"), "~8 min: 100 autonad-fine subnets at 128x128, eager"),
    Benchmark("latency_predictor_ort", "latency_predictor.py", ("--name", "latency_predictor_ort",
              "--search-space", "autonad-fine", "--runtime", "onnxruntime", "--no-ceiling"),
              "~10 min: the same 100 subnets exported to ONNX and timed with onnxruntime"),
    Benchmark("latency_estimate", "latency_estimate.py", (),
              "~7 min: the calibrated estimate vs paper Table VIII (shapes only) and vs 140 subnets timed here"),
    Benchmark("prior_records", "prior_records.py", (),
              "~6 min: the demo supernet with a latency record every 2 steps, its fitted prior vs the table's"),
    Benchmark("search_throughput", "search_throughput.py", (), "~1 min"),
    Benchmark("search_vs_random", "search_vs_random.py", (), "~2 min"),
    Benchmark("inherited_vs_retrained", "inherited_vs_retrained.py", ("--subnets", "10", "--epochs", "5"), "~8 min"),
    Benchmark("pipeline_mt", "pipeline.py", ("--dataset", "mt", "--data-root", "{data}/magnetic_tile", "--recipe",
              "mt-cpu", "--hw", "cpu", "jetson", "--candidates", "--threads", "2"), "~40 min: supernet + 2 searches"),
    Benchmark("retrain_cap", "retrain_cap.py", ("--arch", MT_ARCH, "--dataset", "mt", "--data-root",
              "{data}/magnetic_tile", "--threads", "2"), "~1.6 h: 2 x 30 epochs"),
    Benchmark("decisions", "decisions.py", ("--data-root", "{data}/magnetic_tile", "--seeds", "0", "1", "2", "--steps",
              "800", "--threads", "1"), "~45 min: 3 seeds x 800 retraining steps on MT, 2 decision rules each"),
    Benchmark("ensembles_neu-seg", "ensembles.py", ("--dataset", "neu-seg", "--data-root", "{data}/neu_seg", "--recipe",
              "neu-seg-cpu", "--seeds", "0", "1", "2", "--steps", "600"),
              "~3.5 h: the NEU supernet (shared with pipeline_neu-seg), 1 search, up to 7 x 600 steps per seed"),
    Benchmark("ensembles_mt", "ensembles.py", ("--dataset", "mt", "--data-root", "{data}/magnetic_tile", "--recipe",
              "mt-cpu", "--seeds", "0", "1", "2", "--steps", "600"),
              "~3 h: the MT supernet (shared with pipeline_mt), 1 search, up to 7 x 600 steps per seed"),
    Benchmark("export_round_trip", "export_round_trip.py", ("runs/retrain/mt__7d2f0521__supernet__cap", "--dataset",
              "mt", "--data-root", "{data}/magnetic_tile"), "~1 min"),
    Benchmark("pipeline_neu-seg", "pipeline.py", ("--dataset", "neu-seg", "--data-root", "{data}/neu_seg", "--recipe",
              "neu-seg-cpu", "--hw", "cpu", "jetson", "--retrain-epochs", "1", "--threads", "2", "--candidates",
              "searched", "largest", "random", "upernet", "unet"),
              "~4 h: supernet 6 epochs, 2 searches, 6 x 1-epoch retrainings"),
    Benchmark("ablations", "ablations.py", ("--dataset", "neu-seg", "--data-root", "{data}/neu_seg", "--threads", "1"),
              "~1.5 h: 9 tiny supernets at 96x96, each searched and retrained"),
    Benchmark("inherited_vs_retrained_neu", "inherited_vs_retrained.py", ("--name", "inherited_vs_retrained_neu",
              "--dataset", "neu-seg", "--data-root", "{data}/neu_seg", "--recipe", "neu-seg-ablation", "--epochs", "1",
              "--checkpoint", NEU_TINY), "~15 min: 10 tiny subnets x 1 epoch at 96x96"),
    Benchmark("time_to_quality", "time_to_quality.py", ("--data-root", "{data}/magnetic_tile", "--steps", "1500",
              "--eval-every", "100", "--skip-done"), "~1 h: 9 models x 1500 steps on MT defect crops"),
    Benchmark("train_throughput", "train_throughput.py", ("--threads", "2"),
              "~10 min: supernet and subnet steps, fp32 vs bf16 + channels-last (+ torch.compile)"),
    Benchmark("time_to_quality_neu", "time_to_quality.py", ("--dataset", "neu-seg", "--data-root", "{data}/neu_seg",
              "--steps", "1000", "--eval-every", "100", "--name", "time_to_quality_neu", "--skip-done"),
              "~1 h: 9 models x 1000 steps on NEU-Seg crops"),
    Benchmark("mt_supernet", "mt_supernet.py", ("--data-root", "{data}/magnetic_tile"),
              "~35 min: the MT supernet with the shipped CPU recipe, inherited per-class test IoU"),
    Benchmark("thin_defect_search", "thin_defect_search.py", ("--out", "runs/thin_defects"),
              "~1.5 h: autonad search with its defaults on a generated thin-defect folder vs a U-Net"),
    Benchmark("device_decides", "device_decides.py", ("--dataset", "folder:runs/thin_defects/data", "--skip-done"),
              "~6 min: two default searches (CPU, Jetson) of thin_defect_search's supernet, each pick on both tables"),
    Benchmark("device_decides_runtime", "device_decides.py", ("--dataset", "folder:runs/thin_defects/data",
              "--devices", "cpu-x86-2core", "cpu-x86-2core:onnxruntime", "--name", "device_decides_runtime",
              "--out", "runs/device_decides_runtime", "--skip-done"),
              "~6 min: the same supernet searched for this CPU's eager and ONNX Runtime tables"),
    Benchmark("time_to_quality_thin", "time_to_quality.py", ("--dataset", "folder:runs/thin_defects/data",
              "--data-root", "", "--steps", "1500", "--eval-every", "100", "--name", "time_to_quality_thin", "--only",
              "unet", "hybrid", "hybrid [detail=16]", "conv", "hybrid [lr=0.0005]", "conv [detail=16]",
              "hybrid [detail=16, detail_stride=1]", "unet [unet_norm=gn]", "hybrid [stem=conv]",
              "hybrid [stem=conv, detail=16, detail_stride=1]", "conv [stem=conv, detail=16, detail_stride=1]",
              "hybrid [stem=conv, detail=32, detail_stride=1]",
              "hybrid [stem=conv, detail=16, detail_stride=1, detail_levels=2]",
              "conv [stem=conv, detail=16, detail_stride=1, detail_levels=2]",
              "hybrid [stem=conv, detail=8, detail_stride=1, detail_levels=2]", "--skip-done"),
              "~1.6 h: 2 U-Nets (BN, GN), 13 subnets (detail paths, stem, all-conv, lr) on thin_defect_search's data"),
)  # fmt: skip
BY_NAME = {b.name: b for b in SUITE}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("AUTONAD_DATA", "../shared/datasets"), help="datasets folder")
    p.add_argument("--only", nargs="+", choices=list(BY_NAME), metavar="NAME")
    p.add_argument("--skip-done", action="store_true", help="skip benchmarks whose JSON exists")
    p.add_argument("--list", action="store_true", help="print the suite and exit")
    args = p.parse_args(argv)
    if args.list:
        for b in SUITE:
            done = "done" if (RESULTS / f"{b.name}.json").exists() else "    "
            print(f"{done}  {b.name:24s} {b.budget:60s} {' '.join(b.command(args.data))}")
        return 0
    if not DEMO_CHECKPOINT.exists():
        _run(["autonad", "search", "--dataset", "synthetic", "--hw", "cpu", "--latency-weight", "0.005", "--resume"])
    failed = []
    for bench in SUITE:
        done = (RESULTS / f"{bench.name}.json").exists()
        if (args.only and bench.name not in args.only) or (args.skip_done and done):
            continue
        if _run([sys.executable, *bench.command(args.data)[1:]]) != 0:
            failed.append(bench.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def _run(command: list[str]) -> int:
    print("+ " + " ".join(command), flush=True)
    start = time.perf_counter()
    code = subprocess.call(command, cwd=BENCH.parent)
    print(f"  exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
