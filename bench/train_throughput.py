"""Training throughput on this CPU (the learning issue): images/s of supernet training and of
retraining an extracted subnet, before (fp32, contiguous batches: the old defaults) and after (bf16
autocast on a CPU with native bf16, channels-last batches; for the static retrained subnet also
`torch.compile`), measured side by side in one run.

One step is what the training loop does: zero_grad, forward under the loop's autocast, the joint
loss (CE + Dice), backward, gradient clipping, AdamW step. The modes are timed round-robin (a few
steps each per round, after warm-up), so machine drift falls on every mode alike; medians over rounds.

    python bench/train_throughput.py --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from autonad.space import HeadsArch  # noqa: E402
from autonad.supernet import Supernet, SupernetConfig  # noqa: E402
from autonad.timing import cpu_bf16, cpu_model  # noqa: E402
from autonad.train.losses import SegLoss  # noqa: E402
from autonad.train.optim import build_optimizer  # noqa: E402

CLASSES = 6


@contextlib.contextmanager
def mode_context(bf16: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
        yield


class Mode:
    """One way of running a training step on one model (its own copy and optimizer)."""

    def __init__(self, name: str, model: torch.nn.Module, bf16: bool, channels_last: bool, archs=None):
        self.name, self.bf16, self.channels_last, self.archs = name, bf16, channels_last, archs
        self.model, self.loss = model, SegLoss(1.0)
        self.optimizer = build_optimizer(model, 1e-4, 0.01)
        self.times: list[float] = []
        self.step = 0

    def run(self, x: torch.Tensor, y: torch.Tensor, steps: int, record: bool = True) -> None:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for _ in range(steps):
            if self.archs is not None:  # the supernet: the same arch sequence in every mode
                self.model.set_arch(self.archs[self.step % len(self.archs)])
            self.step += 1
            start = time.perf_counter()
            self.optimizer.zero_grad(set_to_none=True)
            with mode_context(self.bf16):
                out = self.model(x)
            loss = self.loss(out["seg"].float(), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.optimizer.step()
            if record:
                self.times.append(time.perf_counter() - start)


def supernet_modes(config: SupernetConfig, archs) -> list[Mode]:
    def fresh() -> Supernet:
        torch.manual_seed(0)
        return Supernet(config, CLASSES)

    return [Mode("fp32", fresh(), False, False, archs), Mode("bf16+channels_last", fresh(), True, True, archs)]


def subnet_modes(config: SupernetConfig, arch, compile_: bool) -> list[Mode]:
    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return Supernet(config, CLASSES).extract(arch).train()

    modes = [Mode("fp32", fresh(), False, False), Mode("bf16+channels_last", fresh(), True, True)]
    if compile_:
        modes.append(Mode("bf16+channels_last+compile", torch.compile(fresh()), True, True))
    return modes


def measure(modes: list[Mode], x, y, rounds: int, steps: int, warmup: int = 2) -> dict:
    """Warm-up steps first (compilation; for the supernet one pass over its arch sequence, so kernels
    for every layer shape exist, as after the first minutes of a real run), then timed rounds."""
    batch = x.shape[0]
    compile_s = {}
    for mode in modes:
        start = time.perf_counter()
        mode.run(x, y, warmup, record=False)
        compile_s[mode.name] = round(time.perf_counter() - start, 1)
    for _ in range(rounds):
        for mode in modes:
            mode.run(x, y, steps)
    out = {m.name: {"s_per_step": round(statistics.median(m.times), 4),
                    "images_per_s": round(batch / statistics.median(m.times), 2),
                    "warmup_s": compile_s[m.name]} for m in modes}  # fmt: skip
    base = out["fp32"]["images_per_s"]
    for name in out:
        out[name]["speedup_vs_fp32"] = round(out[name]["images_per_s"] / base, 3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--supernet", default="autonad")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4, help="steps per mode per round")
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = SupernetConfig.load(args.supernet)
    space = Supernet(config, CLASSES).space
    rng = random.Random(0)
    archs = [space.sample(rng, heads=HeadsArch()) for _ in range(12)]
    x = torch.randn(args.batch, 3, args.input_size, args.input_size, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, CLASSES, (args.batch, args.input_size, args.input_size), generator=torch.Generator())
    result = {
        "benchmark": "train_throughput", "cpu": cpu_model(), "native_bf16": cpu_bf16(), "threads": args.threads,
        "batch": args.batch, "input_size": args.input_size, "supernet": config.name, "rounds": args.rounds,
        "steps_per_round": args.steps, "torch": torch.__version__, "python": platform.python_version(),
        "command": "python bench/train_throughput.py " + " ".join(sys.argv[1:]),
    }  # fmt: skip
    result["supernet_training"] = measure(supernet_modes(config, archs), x, y, args.rounds, args.steps, len(archs))
    report("train_throughput", result)
    median = space.decode([len(g.choices) // 2 for g in space.genes], HeadsArch())
    result["retraining"] = measure(subnet_modes(config, median, not args.no_compile), x, y, args.rounds, args.steps)
    result["retraining_arch"] = median.to_dict()
    report("train_throughput", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
