"""Supernet training and subnet retraining on Ray Train: the same command on one CPU, one GPU server or a cluster.

`autonad train-supernet --ray-address ADDR --workers N` (and `retrain`) runs the usual `Trainer` in N Ray
Train workers (`TorchTrainer`, `ScalingConfig(num_workers=N, use_gpu=...)`): Ray starts the workers and
their process group (gloo on CPU, nccl on GPU), and each worker's trainer is the DDP run torchrun would
start, so N workers train on the same batches as one process with the same global batch.

Checkpoints: rank 0 writes `<run>/checkpoint.pt` as always (atomically, every epoch and every N
minutes/steps) and after each epoch reports it to Ray Train (`ray.train.report` with a
`Checkpoint`), which keeps the latest under `<run>/ray-train/` (the run folder must be on storage
every node sees, as Ray Train's `storage_path` must). A resumed run continues from whichever is
newer, the local file or Ray's copy, exactly where it stopped; so does a Ray Train worker group that
Ray restarts after a worker failure (`FailureConfig`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autonad.errors import AutoNADError, reason
from autonad.train.distributed import DistInfo, barrier, pick_device

RAY_TRAIN_DIR = "ray-train"  # Ray Train's storage for the run, inside the run folder
RUN_FILES = ("checkpoint.pt", "best.pt", "history.jsonl", "run.yaml", "split.json")  # what a Ray checkpoint carries
MAX_FAILURES = 2  # worker-group restarts Ray Train makes after a worker dies (each resumes from the checkpoint)
ERROR_FILE = ".ray-train-error"  # a worker's AutoNADError: restarted workers fail at once, the driver shows it


@dataclass(frozen=True)
class RayTrainJob:
    """What every Ray Train worker needs to build its trainer (picklable: it travels to the workers).

    `build(source, run_dir, dist, max_epochs)` makes the run's `Trainer`: e.g.
    `functools.partial(SupernetTrainer, recipe, config)` or a `RetrainJob`'s `trainer`; each worker opens
    the dataset itself, so the data must be at the same path on every node.
    """

    build: Callable[..., Any]
    dataset: str
    data_root: str | None
    seed: int  # the dataset's split seed (the recipe's)
    run_dir: Path  # absolute
    resume: bool = False
    skip_bad: bool = False
    max_epochs: int | None = None
    tensorboard: bool = True
    device: str = "auto"  # auto | cpu | cuda, as --device
    threads: int | None = None  # torch threads per worker (default: torch's)

    @property
    def storage(self) -> Path:
        """Ray Train's folder for the run (`RunConfig(storage_path=run_dir, name=RAY_TRAIN_DIR)`)."""
        return self.run_dir / RAY_TRAIN_DIR

    def source(self):
        from autonad.data import open_dataset

        return open_dataset(self.dataset, self.data_root, seed=self.seed, skip_bad=self.skip_bad)

    def trainer(self, dist: DistInfo) -> Any:
        trainer = self.build(self.source(), self.run_dir, dist, self.max_epochs)
        trainer.tensorboard = self.tensorboard
        return trainer

    def open_checked(self, source=None):
        """The dataset (`source` where the caller has opened it already), every file read once, in the driver:
        a bad file or a refused resume is one line before any worker starts."""
        from autonad.ui import console

        earlier = (self.run_dir / "checkpoint.pt").exists() or any(self.storage.glob("checkpoint_*"))
        if earlier and not self.resume:
            raise AutoNADError(f"{self.run_dir}: already holds a training run; pass --resume or choose another --out")
        opened = source is None
        source = self.source() if opened else source
        source.verify()
        for message in source.bad if opened else ():  # a caller's own source: the caller lists them
            console.print(f"[yellow]skipped:[/] {message}")
        return source


def fit_on_ray(job: RayTrainJob, workers: int, address: str | None) -> None:
    """Run `job` on `workers` Ray Train workers, on the cluster at `address` or a local Ray; returns once
    training has finished and the run folder holds the final checkpoint."""
    import ray

    from autonad.cluster import available_cores, connect_ray

    # torch threads per worker: Ray gives each worker that many CPUs (and sets OMP_NUM_THREADS to them);
    # a local Ray shares this machine's cores out, a cluster's workers take one unless --threads says more
    threads = job.threads or (1 if address else max(1, available_cores() // workers))
    owns = connect_ray(address, workers * threads)
    try:
        resources = ray.cluster_resources()
        use_gpu = uses_gpus(job.device, resources, workers)
        check_resources(workers, use_gpu, resources, threads)
        (job.run_dir / ERROR_FILE).unlink(missing_ok=True)
        _run_with_progress(lambda: _fit(job, workers, use_gpu, threads), job.run_dir)
    finally:
        if owns:
            ray.shutdown()


def uses_gpus(device: str, resources: dict[str, float], workers: int) -> bool:
    """Whether the workers train on GPUs, one each (NCCL wants one rank per GPU): --device cuda always,
    auto where the cluster has a GPU for every worker, cpu never."""
    if device == "auto":
        return resources.get("GPU", 0) >= workers
    return device == "cuda"


def check_resources(workers: int, use_gpu: bool, resources: dict[str, float], threads: int = 1) -> None:
    """One line before any work when the cluster cannot hold the workers."""
    for kind, need in (("CPU", workers * threads), *((("GPU", workers),) if use_gpu else ())):
        have = int(resources.get(kind, 0))
        if have < need:
            raise AutoNADError(f"{workers} Ray Train workers need {need} {kind}s, the Ray cluster has {have}")


def _fit(job: RayTrainJob, workers: int, use_gpu: bool, threads: int) -> None:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        _worker,
        train_loop_config={"job": job, "use_gpu": use_gpu, "threads": threads},
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": threads, **({"GPU": 1} if use_gpu else {})},
        ),  # fmt: skip
        run_config=RunConfig(
            name=RAY_TRAIN_DIR,
            storage_path=str(job.run_dir),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            failure_config=FailureConfig(max_failures=MAX_FAILURES),
        ),  # fmt: skip
    )
    try:
        result = trainer.fit()
    except TrainingFailedError as e:
        error = job.run_dir / ERROR_FILE
        if error.exists():
            message = error.read_text()
            error.unlink()
            raise AutoNADError(message) from None
        raise AutoNADError(_worker_error(e)) from None
    if result.checkpoint is not None:  # on a cluster the last checkpoint may have been written on another node
        with result.checkpoint.as_directory() as saved:
            restore_newer(Path(saved), job.run_dir)


def _worker_error(error: Exception) -> str:
    """A worker's AutoNADError as its own line (a bad file, a refused resume), else Ray's reason."""
    text = str(error)
    for line in text.splitlines():
        if "AutoNADError: " in line:
            return line.split("AutoNADError: ", 1)[1].strip()
    return f"Ray Train failed ({reason(error)})"


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the run's trainer as one rank of the process group Ray has set up."""
    job: RayTrainJob = config["job"]
    torch.set_num_threads(config["threads"])
    error = job.run_dir / ERROR_FILE
    if error.exists():  # an earlier attempt met a problem a restart cannot fix: end without training again
        raise AutoNADError(error.read_text())
    try:
        _train_rank(job, config["use_gpu"])
    except AutoNADError as e:  # a user problem (a refused resume, a diverged run): Ray would retry it
        error.write_text(str(e))
        raise


def _train_rank(job: RayTrainJob, use_gpu: bool) -> None:
    """This worker's rank of the run: restore Ray Train's checkpoint where it is further on, then train."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    device = ray.train.torch.get_device() if use_gpu else pick_device("cpu")
    dist = DistInfo(rank=context.get_world_rank(), world=context.get_world_size(), device=device)
    restored = ray.train.get_checkpoint()
    if restored is not None and dist.is_main:
        with restored.as_directory() as saved:
            restore_newer(Path(saved), job.run_dir)
    barrier(dist)
    trainer = job.trainer(dist)
    trainer.on_epoch_end = _report
    trainer.fit(resume=job.resume or restored is not None or (job.run_dir / "checkpoint.pt").exists())


def _report(trainer) -> None:
    """After each epoch's checkpoint, on every rank (Ray Train's report is collective): rank 0 hands
    the run's files to Ray Train, which persists them to the run's storage."""
    import ray.train

    record = trainer.state.history[-1]
    metrics = {k: v for k, v in record.items() if isinstance(v, int | float)}
    if not trainer.dist.is_main:
        ray.train.report(metrics, checkpoint=None)
        return
    # hard links beside the run's files (no extra copy in /tmp); Ray Train copies them into its storage, so the
    # disk holds the run's checkpoint twice (its own and Ray Train's last one)
    with tempfile.TemporaryDirectory(prefix=".ray-report-", dir=trainer.run_dir) as tmp:
        for name in RUN_FILES:
            if (trainer.run_dir / name).exists():
                link_or_copy(trainer.run_dir / name, Path(tmp) / name)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)


def saved_step(run_dir: Path) -> int:
    """The global step of the checkpoint in `run_dir` (-1: none)."""
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return -1
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(payload["state"]["global_step"])


def restore_newer(saved: Path, run_dir: Path) -> bool:
    """Copy a Ray checkpoint's run files into `run_dir` when it is further on than the local checkpoint
    (a worker restarted on another node, or a local file lost); whether it was."""
    if saved.resolve() == run_dir.resolve() or saved_step(saved) <= saved_step(run_dir):
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (saved / name).exists():
            shutil.copy2(saved / name, run_dir / f".{name}.restoring")
            (run_dir / f".{name}.restoring").replace(run_dir / name)
    return True


def _run_with_progress(fit: Callable[[], None], run_dir: Path) -> None:
    """Run `fit` in a thread while the driver shows the epochs rank 0 has finished (its history.jsonl)."""
    import yaml

    from autonad.ui import progress

    failure: list[BaseException] = []

    def target() -> None:
        try:
            fit()
        except BaseException as e:  # re-raised in the driver's thread
            failure.append(e)

    thread = threading.Thread(target=target, name="ray-train-driver", daemon=True)
    thread.start()
    with progress() as bar:
        task = bar.add_task(f"Ray Train: {run_dir.name}", total=None)
        while thread.is_alive():
            thread.join(timeout=1.0)
            done = _lines(run_dir / "history.jsonl")
            try:
                total = yaml.safe_load((run_dir / "run.yaml").read_text())["budget"]["epochs"]
            except (OSError, TypeError, KeyError, yaml.YAMLError):
                total = None
            bar.update(task, completed=done, total=total, description=f"Ray Train: epoch {done}/{total or '?'}")
    if failure:
        raise failure[0]


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0
