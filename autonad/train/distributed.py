"""torch.distributed set-up: the same command runs on one CPU, one GPU or many (torchrun).

`torchrun --standalone --nproc_per_node N -m autonad train-supernet ...` (torchrun wants a module
with -m, or a script path: `--no-python autonad` also works) sets RANK/WORLD_SIZE/LOCAL_RANK; we
pick gloo on CPU and nccl on GPU. Without those variables everything runs in one process.
The recipe's `batch_size` is the global batch, split evenly over the processes: N processes train on the
same batches as one (tests/train/test_distributed.py). torchrun starts each worker in a session of
its own: to stop a run, signal torchrun with SIGTERM/SIGINT (forwarded), not SIGKILL (the workers
would carry on). `--workers N` / `--ray-address` run the same trainer on Ray Train workers instead
(`autonad.train.ray_train`), which set up the process group themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        from autonad.errors import AutoNADError

        raise AutoNADError("--device cuda: no CUDA device is available (use --device cpu)")
    return torch.device(preference)


def init_distributed(preference: str = "auto") -> DistInfo:
    device = pick_device(preference)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world=world, device=device)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average logged scalars over ranks (each rank saw its share of the global batch)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return {k: float(v) / info.world for k, v in zip(keys, t.tolist())}


def from_rank0(value: int, info: DistInfo) -> int:
    """Rank 0's value of an integer on every rank (a decision only rank 0 measured, e.g. a time plan)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.broadcast(t, src=0)
    return int(t.item())
