"""The GPU check (#21): every stage of the pipeline on one CUDA device, each step under its own time limit.

    python bench/gpu_check.py --prepare-data ../shared/datasets/neu_seg   # here: a part of NEU-Seg -> .gpu-data/
    bash bench/gpu_check.sh                                                # there: every step, JSON as it goes

Steps (each `python -m autonad ...` in a subprocess with a time limit, the figures read from the files it
writes; a step that fails or runs out of time is recorded as such and the next one runs):

1. profile   `autonad profile --device cuda` of the paper's space at 200x200 into a measured table
             (latency_tables/<device>.yaml, to be committed);
2. validate  `autonad latency validate` of that table on 100 random subnets (MAPE, Kendall tau);
3. supernet  NEU-Seg supernet training at 200x200 with bf16 autocast for a fixed wall-clock budget: images/s;
4. search    a short search evaluating on the GPU (Ray actors sharing it where Ray is installed, else in
             process): candidates/min;
5. retrain   one retraining epoch of the searched arch: images/s, test mIoU;
6. onnx      the exported model timed with onnxruntime (CUDA provider where installed) and TorchScript on CUDA.

The JSON goes to bench/results/gpu_<device>.json after every step (`--skip-done` keeps the steps a
previous run finished). Without a CUDA device the check says so and exits 0. `--device cpu --quick`
rehearses every step on a CPU with tiny budgets (into a scratch folder, not bench/results).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".gpu-data" / "neu_seg"  # ignored; carried to the GPU machine (64 MiB at most travel)
LIMITS_S = {"profile": 150, "validate": 60, "supernet": 100, "search": 75, "retrain": 45, "onnx": 30}  # 7.7 min
QUICK_LIMITS_S = {k: 600 for k in LIMITS_S}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare-data", type=Path, metavar="NEU_SEG", help="copy a part of NEU-Seg into .gpu-data/")
    p.add_argument("--train-images", type=int, default=480, help="with --prepare-data: training images to copy")
    p.add_argument("--test-images", type=int, default=120, help="with --prepare-data: test images to copy")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="tiny budgets (a rehearsal of the steps on a CPU)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, help="JSON file (default: bench/results/gpu_<device>.json)")
    p.add_argument("--skip-done", action="store_true", help="keep the steps a previous run of --out finished")
    args = p.parse_args(argv)
    if args.prepare_data:
        return prepare_data(args.prepare_data, args.data, args.train_images, args.test_images)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: the GPU check needs one (nothing measured)")
        return 0
    if not (args.data / "images" / "training").is_dir():
        sys.exit(f"{args.data}: no NEU-Seg part here; run bench/gpu_check.py --prepare-data ../shared/datasets/neu_seg")
    return Check(args).run()


def prepare_data(source: Path, target: Path, train: int, test: int) -> int:
    """The first `train` training and `test` test images of NEU-Seg with their masks, layout unchanged."""
    if not (source / "images" / "training").is_dir():
        sys.exit(f"{source}: not NEU-Seg (no images/training)")
    shutil.rmtree(target, ignore_errors=True)
    total = 0
    for split, count in (("training", train), ("test", test)):
        for image in sorted((source / "images" / split).glob("*.jpg"))[:count]:
            mask = source / "annotations" / split / f"{image.stem}.png"
            for src, kind in ((image, "images"), (mask, "annotations")):
                dst = target / kind / split / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                total += dst.stat().st_size
    print(f"{target}: {train} training + {test} test images of NEU-Seg, {total / 2**20:.1f} MiB")
    return 0


class Check:
    def __init__(self, args: argparse.Namespace):
        import torch

        self.args, self.device, self.quick = args, args.device, args.quick
        self.limits = QUICK_LIMITS_S if args.quick else LIMITS_S
        name = torch.cuda.get_device_name() if self.device == "cuda" else "cpu-rehearsal"
        self.slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.work = REPO / "runs" / "gpu-check" / self.slug
        self.table = (self.work / "table.yaml") if args.quick else REPO / "latency_tables" / f"{self.slug}.yaml"
        default = self.work / "gpu_check.json" if args.quick else REPO / "bench" / "results" / f"gpu_{self.slug}.json"
        self.out = args.out or default
        self.result = json.loads(self.out.read_text()) if args.skip_done and self.out.exists() else {}
        self.result.update(device=name, torch=torch.__version__, quick=self.quick, steps=self.result.get("steps", {}))
        self.data = ["--dataset", "neu-seg", "--data-root", str(args.data.resolve())]

    def run(self) -> int:
        self.work.mkdir(parents=True, exist_ok=True)
        for name in LIMITS_S:
            if self.result["steps"].get(name, {}).get("status") == "ok":
                print(f"{name}: done before (--skip-done)")
                continue
            start = time.monotonic()
            try:
                figures = getattr(self, f"step_{name}")()
                record = {"status": "ok", **figures}
            except Exception as e:  # a step that fails is recorded as such, and the next step runs
                record = {"status": "failed", "why": f"{e.__class__.__name__}: {e}"}
            record["seconds"] = round(time.monotonic() - start, 1)
            self.result["steps"][name] = record
            print(f"{name}: {json.dumps(record)}", flush=True)
            self.save()
        return 0

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=1) + "\n")

    def autonad(self, step: str, *argv: str) -> str:
        """`python -m autonad ARGV` in the check's folder (its runs/ land there) under the step's time limit;
        its output, or StepFailed with its last line."""
        command = [sys.executable, "-m", "autonad", *argv]
        try:
            done = subprocess.run(command, cwd=self.work, capture_output=True, text=True, timeout=self.limits[step])
        except subprocess.TimeoutExpired:
            raise StepFailed(f"over its {self.limits[step]} s limit") from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise StepFailed(lines[-1] if lines else f"exit {done.returncode}")
        return done.stdout

    # ------------------------------------------------------------------ the steps
    def step_profile(self) -> dict:
        size = "64x64" if self.quick else "200x200"
        space = "tiny-fine" if self.quick else "autonad"
        self.autonad("profile", "profile", "--hw", self.slug, "--device", self.device, "--search-space", space,
                     "--input-size", size, "--classes", "4", "--calibrate", "5" if self.quick else "20",
                     "--repeats", "5" if self.quick else "15", "--out", str(self.table), "--resume")  # fmt: skip
        return {"table": str(self.table.relative_to(REPO)), "space": space, "input_size": size}

    def step_validate(self) -> dict:
        out = self.work / "validate.json"
        space = "tiny-fine" if self.quick else "autonad"
        n = "5" if self.quick else "100"
        self.autonad("validate", "latency", "validate", "--hw", str(self.table), "--search-space", space, "--n", n,
                     "--classes", "4", "--device", self.device, "--out", str(out))  # fmt: skip
        summary = json.loads(out.read_text())["summary"]
        return {k: summary[k] for k in summary if isinstance(summary[k], int | float)}

    def recipe(self) -> list[str]:
        if self.quick:
            return ["--recipe", "demo", "--input-size", "64x64"]
        return ["--recipe", "neu-seg", "--input-size", "200x200"]

    def budget(self) -> list[str]:
        return ["--steps", "4"] if self.quick else ["--budget", "60s"]

    def step_supernet(self) -> dict:
        """Into the folder the search then reuses (runs/supernet/<dataset>__<supernet>__<recipe + budget>)."""
        shutil.rmtree(self.work / "runs", ignore_errors=True)
        log = self.autonad("supernet", "train-supernet", *self.data, *self.recipe(), *self.budget(), "--device",
                           self.device, "--no-tensorboard")  # fmt: skip
        run_dir = self.work / re.search(r"-> (\S+)", log).group(1)
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
        return {"images_per_s": max(h["images_per_s"] for h in history), "epochs": len(history),
                "steps": history[-1]["step"], "fp32_fallback": any("fp32_since" in h for h in history)}  # fmt: skip

    def step_search(self) -> dict:
        out = self.work / "search"
        shutil.rmtree(out, ignore_errors=True)
        try:
            import ray  # noqa: F401

            workers = ["--workers", "8" if self.device == "cuda" else "2"]
        except ImportError:  # Ray not installed there: evaluate in process, on the GPU all the same
            workers = ["--workers", "0"]
        population, generations, parents = ("4", "1", "2") if self.quick else ("24", "3", "6")
        start = time.monotonic()
        log = self.autonad("search", "search", *self.data, *self.recipe(), *self.budget(), "--hw", str(self.table),
                           "--population", population, "--generations", generations, "--parents", parents,
                           "--val-images", "40",
                           "--no-finetune", "--device", self.device, *workers, "--out", str(out),
                           "--no-tensorboard")  # fmt: skip
        seconds = time.monotonic() - start
        evaluated = len((out / "history.jsonl").read_text().splitlines())
        plan = re.search(r"evaluating on (.+)", log)
        return {"candidates": evaluated, "candidates_per_min": round(60 * evaluated / seconds, 1),
                "evaluators": plan.group(1).strip() if plan else "in process"}  # fmt: skip

    def step_retrain(self) -> dict:
        out = self.work / "retrain"
        shutil.rmtree(out, ignore_errors=True)
        self.autonad("retrain", "retrain", "--arch", str(self.work / "search" / "best_arch.yaml"), *self.data,
                     *self.recipe(), "--epochs", "1", "--device", self.device, "--out", str(out),
                     "--no-tensorboard")  # fmt: skip
        history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
        metrics = json.loads((out / "metrics.json").read_text())
        return {"images_per_s": history[-1]["images_per_s"], "test_miou": metrics["miou"]}

    def step_onnx(self) -> dict:
        import torch

        from autonad.export import load_exported, onnx_providers
        from autonad.timing import median_ms

        out = self.work / "retrain"
        figures: dict = {"providers": onnx_providers(torch.device(self.device))}
        for name in ("model.onnx", "model.ts"):
            run, meta = load_exported(out / name, self.device)
            x = torch.randn(1, 3, *meta["input_size"])
            with torch.inference_mode():
                ms = median_ms(lambda run=run, x=x: run(x), self.device, warmup=10, repeats=50)
            figures[f"{name}_ms"] = round(ms, 3)
        return figures


class StepFailed(Exception):
    pass


if __name__ == "__main__":
    raise SystemExit(main())
