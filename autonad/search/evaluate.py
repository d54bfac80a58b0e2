"""Candidate evaluation with inherited supernet weights (SPEC section 7).

`EvalContext` rebuilds, from a supernet checkpoint ("autonad-supernet/1"), the trained supernet
and the validation loader exactly as the trainer built them (the run's split.json, the recipe's
transform with the recorded mean/std), and evaluates one arch: every metric of
`MetricsReport.to_dict()` plus the subnet's params and FLOPs (fvcore, the recipe's input size).

Evaluators share one interface: ``imap(archs)`` yields ``(index, result)`` as results complete
(so a progress bar can advance) and ``evaluate(archs)`` returns them in order.

* `LocalEvaluator`: in this process (``--workers 0``).
* `RayEvaluator`: a pool of Ray actors, one CPU and one torch thread each, every actor loading the
  checkpoint once. Where the cluster has GPUs (and --device is not cpu), each actor also asks Ray for
  a share of one (`ACTORS_PER_GPU` actors per GPU by default: a candidate's evaluation does not
  fill a modern GPU) and evaluates there (`plan_actors`). A candidate whose actor dies is re-run on
  a replacement actor, never dropped.
  On a multi-node cluster, the checkpoint, split file and dataset must be at the same paths on
  every node.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from autonad.cluster import connect_ray, gpu_share
from autonad.data import SegmentationDataset, Transform, eval_loader, open_dataset
from autonad.errors import AutoNADError, reason
from autonad.space import Arch, HeadsArch
from autonad.supernet import Supernet, SupernetConfig
from autonad.supernet.complexity import fvcore_flops
from autonad.train.distributed import pick_device
from autonad.train.evaluate import accumulate_arch
from autonad.train.loop import use_bf16
from autonad.train.trainer import CHECKPOINT_FORMAT, load_trained_supernet

SUPERNET_FORMAT = CHECKPOINT_FORMAT  # what a supernet training run writes
MAX_DEATHS_PER_CANDIDATE = 3  # a candidate that kills this many actors in a row is reported, not retried
READY_TIMEOUT_S = 600.0  # for every worker to load the supernet and the validation images
ACTORS_PER_GPU = 4  # evaluation actors sharing one GPU (each holds a supernet copy: ~1 GB for the paper's)


@dataclass(frozen=True)
class EvalSettings:
    """What a worker needs to evaluate candidates (plain values: it travels to Ray actors)."""

    checkpoint: str  # the supernet run's checkpoint.pt
    dataset: str = "synthetic"  # as on the command line: synthetic, mt, folder:ROOT, ...
    data_root: str | None = None
    split_file: str | None = None  # default: split.json beside the checkpoint (the split it was trained on)
    val_images: int | None = None  # the first N validation images (None: all)
    batch_size: int | None = None  # default: the recipe's
    device: str = "cpu"  # cpu | cuda | auto (pick_device)
    complexity: bool = True  # also report params and FLOPs of every evaluated subnet

    @property
    def split_path(self) -> Path:
        return Path(self.split_file) if self.split_file else Path(self.checkpoint).parent / "split.json"


class SubnetComplexity:
    """Params and fvcore FLOPs (batch 1) of subnets, extracted from one supernet built once.

    Same numbers as `autonad.supernet.arch_complexity` (which builds a supernet per call), without
    the per-call build and without thop's second count, which the search does not use.
    """

    def __init__(self, net: Supernet, input_size: tuple[int, int]):
        self.net, self.input_size = net, tuple(input_size)

    @staticmethod
    def from_config(config: SupernetConfig, num_classes: int, input_size: tuple[int, int]) -> SubnetComplexity:
        return SubnetComplexity(Supernet(config, num_classes), input_size)

    @torch.no_grad()
    def __call__(self, arch: Arch) -> tuple[int, int]:
        model = self.net.extract(arch).eval()
        param = next(model.parameters())
        x = torch.zeros(1, self.net.space.in_channels, *self.input_size, device=param.device, dtype=param.dtype)
        return sum(p.numel() for p in model.parameters()), int(fvcore_flops(model, x))


class EvalContext:
    """The trained supernet and its validation loader, loaded once; ``evaluate(arch)`` -> metrics dict."""

    def __init__(self, settings: EvalSettings):
        self.settings = settings
        self.device = pick_device(settings.device)
        trained = load_trained_supernet(settings.checkpoint, self.device)
        self.net, self.config, self.recipe = trained.net, trained.config, trained.recipe
        self.classes, self.normalisation, step = trained.classes, trained.normalisation, trained.step
        self.loader = self._val_loader(self.normalisation)
        self.complexity = SubnetComplexity(self.net, self.recipe.input_size)
        self.heads = trained.heads
        self.bf16 = use_bf16(self.recipe.train, self.device)
        self.identity = {
            "supernet": self.config.name, "supernet_step": step, "recipe": self.recipe.name,
            "classes": self.classes, "dataset": settings.dataset, "val_images": len(self.loader.dataset),
        }  # fmt: skip

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _val_loader(self, norm: dict[str, Any]) -> DataLoader:
        s = self.settings
        split = s.split_path
        if not split.is_file():
            raise AutoNADError(f"{split}: split file not found (a supernet run writes it beside its checkpoint)")
        source = open_dataset(s.dataset, s.data_root, seed=self.recipe.train.seed, split_file=split)
        if list(source.classes) != self.classes:
            raise AutoNADError(
                f"{s.checkpoint}: the supernet was trained on classes {self.classes}, dataset {source.name} has "
                f"{list(source.classes)}"
            )
        transform = dataclasses.replace(self.recipe.transform, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
        val = SegmentationDataset(source, "val", Transform(transform, train=False))
        subset = Subset(val, range(min(s.val_images, len(val)))) if s.val_images else val
        batch = s.batch_size or self.recipe.train.batch_size
        return eval_loader(subset, batch)  # as SupernetTrainer.validate

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        """Every validation metric of `arch` (MetricsReport.to_dict), their bootstrap standard errors
        over the validation images ('se'), and 'params' and 'flops'."""
        metrics = accumulate_arch(self.net, arch, self.loader, self.classes, self.device, self.bf16)
        out = metrics.compute().to_dict()
        out["se"] = metrics.bootstrap_se()
        if self.settings.complexity:
            out["params"], out["flops"] = self.complexity(arch)
        return out


# ----------------------------------------------------------------------------- evaluators
class Evaluator(ABC):
    """Evaluates candidate archs; ``imap`` yields ``(index, result)`` in completion order."""

    heads: HeadsArch = HeadsArch()  # which heads the candidates turn on (the supernet's trained ones)
    identity: Mapping[str, Any] = MappingProxyType({})  # what the results depend on, compared on resume

    @abstractmethod
    def imap(self, archs: Sequence[Arch]) -> Iterator[tuple[int, dict[str, Any]]]: ...

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(archs)
        for i, result in self.imap(archs):
            results[i] = result
        return results  # type: ignore[return-value]

    def close(self) -> None:  # noqa: B027 - in-process evaluators hold nothing to release
        """Release workers."""

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FunctionEvaluator(Evaluator):
    """Evaluates in this process with a function ``arch -> result dict``."""

    def __init__(self, fn: Callable[[Arch], dict[str, Any]], heads: HeadsArch = HeadsArch()):
        self.fn, self.heads, self.identity = fn, heads, {}

    def imap(self, archs: Sequence[Arch]) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, arch in enumerate(archs):
            yield i, self.fn(arch)


class LocalEvaluator(FunctionEvaluator):
    """``--workers 0``: the supernet loaded once, in this process."""

    def __init__(self, settings: EvalSettings | EvalContext):
        self.context = settings if isinstance(settings, EvalContext) else EvalContext(settings)
        super().__init__(self.context.evaluate, self.context.heads)
        self.identity = self.context.identity


class _RayWorker:
    """One Ray actor: loads the checkpoint once; a loading problem is kept and reported by `ready`."""

    def __init__(self, settings: EvalSettings):
        import ray

        torch.set_num_threads(1)
        self.context: EvalContext | None = None
        self.error: str | None = None
        try:
            self.context = EvalContext(settings)
        except AutoNADError as e:
            gpus = ray.get_gpu_ids()
            self.error = str(e) if not gpus else f"a Ray worker given GPU {gpus} on {os.uname().nodename}: {e}"

    def ready(self) -> dict[str, Any]:
        ctx = self.context
        info = {"error": self.error, "pid": os.getpid()}
        if ctx is not None:
            info.update(heads=ctx.heads.to_dict(), identity=ctx.identity)
        return info

    def evaluate(self, arch: dict[str, Any]) -> dict[str, Any]:
        if self.context is None:
            raise AutoNADError(self.error or "the supernet is not loaded")
        return self.context.evaluate(Arch.from_dict(arch))


class RayEvaluator(Evaluator):
    """A pool of Ray actors that each load the supernet once; lost actors are replaced."""

    def __init__(
        self,
        settings: EvalSettings,
        workers: int | None = None,
        address: str | None = None,
        device: str = "auto",
        actors_per_gpu: int = ACTORS_PER_GPU,
    ):
        import ray

        self.actors: list[Any] = []
        self.restarts = 0  # actors replaced after they died
        self.in_flight: dict[int, Any] = {}  # candidate index -> the actor evaluating it (during imap)
        self.owns_ray = connect_ray(address, workers)
        try:
            self.plan = plan_actors(ray.cluster_resources(), workers, device, actors_per_gpu)
            self.settings = dataclasses.replace(settings, device=self.plan.device)
            self._actor_class = ray.remote(num_cpus=1, num_gpus=self.plan.gpus_per_actor, max_restarts=0)(_RayWorker)
            self.actors = [self._spawn() for _ in range(self.plan.actors)]
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> Any:
        return self._actor_class.remote(self.settings)

    def _wait_ready(self) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            infos = ray.get([a.ready.remote() for a in self.actors], timeout=READY_TIMEOUT_S)
        except RayActorError as e:
            raise AutoNADError(f"a Ray worker died while loading the supernet ({reason(e)})") from None
        except GetTimeoutError:
            raise AutoNADError(
                f"the Ray workers did not load the supernet within {READY_TIMEOUT_S:g} s (is the cluster busy?)"
            ) from None
        error = next((i["error"] for i in infos if i["error"]), None)
        if error:
            raise AutoNADError(error)
        heads = infos[0]["heads"]
        self.heads = HeadsArch(cap=heads["cap"], classes=heads.get("classes", False))
        self.identity = infos[0]["identity"]

    def imap(self, archs: Sequence[Arch]) -> Iterator[tuple[int, dict[str, Any]]]:
        import ray

        pending, idle = deque(range(len(archs))), list(self.actors)
        refs: dict[Any, tuple[int, Any]] = {}
        deaths = [0] * len(archs)
        self.in_flight = {}
        while pending or refs:
            while pending and idle:
                i, actor = pending.popleft(), idle.pop()
                refs[actor.evaluate.remote(archs[i].to_dict())] = (i, actor)
                self.in_flight[i] = actor
            done, _ = ray.wait(list(refs), num_returns=1)
            i, actor = refs.pop(done[0])
            del self.in_flight[i]
            result = self._result(done[0], archs[i], deaths[i])
            if result is None:  # the actor died: run the candidate again, first, on a replacement
                deaths[i] += 1
                idle.append(self._replace(actor))
                pending.appendleft(i)
                continue
            idle.append(actor)
            yield i, result

    def _result(self, ref: Any, arch: Arch, deaths: int) -> dict[str, Any] | None:
        """The candidate's metrics, or None when its actor died (so it is re-run)."""
        import ray
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError

        try:
            return ray.get(ref)
        except (RayActorError, WorkerCrashedError, ObjectLostError) as e:
            if deaths + 1 >= MAX_DEATHS_PER_CANDIDATE:
                raise AutoNADError(
                    f"candidate {arch.hash} ({arch.short()}) lost {deaths + 1} Ray workers in a row (last: {reason(e)})"
                ) from None
            return None
        except RayTaskError as e:
            if isinstance(e.cause, AutoNADError):
                raise AutoNADError(str(e.cause)) from None
            raise

    def _replace(self, actor: Any) -> Any:
        import ray

        ray.kill(actor, no_restart=True)  # if it is only unreachable, make sure it is gone
        fresh = self._spawn()
        self.actors[self.actors.index(actor)] = fresh
        self.restarts += 1
        return fresh

    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False


@dataclass(frozen=True)
class ActorPlan:
    actors: int
    gpus_per_actor: float  # the share of a GPU each actor asks Ray for (0: CPU actors)
    device: str  # where the actors evaluate: "cpu" or "cuda" (the GPU Ray assigns)

    def describe(self) -> str:
        where = f"{self.gpus_per_actor:g} GPU each" if self.gpus_per_actor else "CPU"
        return f"{self.actors} Ray workers ({where})"


def plan_actors(resources: Mapping[str, float], workers: int | None, device: str, per_gpu: int) -> ActorPlan:
    """How many evaluation actors the cluster's resources hold and what each asks for: one CPU each and,
    under the --device rule (`gpu_share`), a share of a GPU; `per_gpu` actors per GPU unless `workers`
    says how many."""
    cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    on_gpu = gpu_share(dict(resources), device, 1) > 0
    fitting = min(cpus, int(gpus * per_gpu)) if on_gpu else cpus
    count = workers or max(1, fitting)  # a cluster without CPUs (yet) is refused below
    if count > cpus:
        raise AutoNADError(f"{count} Ray workers need {count} CPUs, the Ray cluster has {cpus}")
    share = gpu_share(dict(resources), device, count)
    return ActorPlan(count, share, "cuda" if share else "cpu")


def make_evaluator(
    settings: EvalSettings, workers: int | None, address: str | None = None, device: str = "auto"
) -> Evaluator:
    """``workers == 0`` (and no address): in this process, on `device`; otherwise a Ray pool (None: one
    per core, or `ACTORS_PER_GPU` per GPU) that evaluates on the cluster's GPUs unless `device` is cpu."""
    if workers == 0 and not address:
        return LocalEvaluator(dataclasses.replace(settings, device=str(pick_device(device))))
    return RayEvaluator(settings, workers or None, address, device)
