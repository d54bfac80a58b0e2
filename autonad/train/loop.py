"""The training loop every AutoNAD training run shares (the supernet's and a retrained subnet's).

`Trainer` owns the data (recorded split, normalisation, seeded augmentation), the joint
segmentation + CaP loss, AdamW with a warm-up schedule, the step loop with progress, periodic
validation and atomic checkpoints that resume bit for bit. A subclass says what is trained
(`build_model`, `build_step`, `step_inputs`), how it is validated (`validate`) and what else its
checkpoint and run file hold.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from autonad import __version__
from autonad.config import dump_yaml, from_mapping, write_text_atomic
from autonad.data import SegmentationDataset, SegSource, Transform, check_same_data, compute_norm_stats, eval_loader
from autonad.errors import AutoNADError, reason
from autonad.tensorboard import ScalarLog, open_log
from autonad.timing import cpu_bf16, device_name, synchronize
from autonad.train.batches import EpochBatches, batches_per_epoch
from autonad.train.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from autonad.train.distributed import DistInfo, barrier, from_rank0, mean_across_ranks
from autonad.train.evaluate import bf16_autocast
from autonad.train.losses import JointLoss, SegLoss, class_balanced_pos_weight, sqrt_inverse_frequency
from autonad.train.optim import build_optimizer, decay_with_warmup
from autonad.train.recipe import Recipe, TrainingSettings
from autonad.ui import console, progress


@dataclass
class TrainState:
    """Where training stands; everything here is saved in the checkpoint."""

    epoch: int = 0  # current epoch (== epochs when done)
    step_in_epoch: int = 0  # batches of `epoch` already trained
    global_step: int = 0
    history: list[dict] = field(default_factory=list)
    latency_records: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    # the current epoch so far: logged values of its steps (averaged over ranks) and its seconds, so an
    # epoch interrupted by a kill and resumed logs the same mean loss as an uninterrupted one
    epoch_losses: list[dict[str, float]] = field(default_factory=list)
    epoch_s: float = 0.0
    best: dict[str, Any] = field(default_factory=dict)  # best validation so far (runs that keep one)
    val_s: float = 0.0  # seconds spent validating so far (a time budget's re-planning)
    validations: int = 0
    skipped_steps: int = 0  # updates skipped for non-finite gradients
    fp32_since: int | None = None  # the step from which a bf16 run computes in fp32 (after a non-finite step)


MAX_SKIPPED_IN_A_ROW = 20  # steps with non-finite gradients before a run counts as diverged
OPTIMIZER_OVERHEAD = 1.1  # a timed probe step has no optimiser update, clipping or logging


def use_bf16(settings: TrainingSettings, device: torch.device) -> bool:
    """Whether a run with these settings computes in bf16 on `device`: `amp` on a GPU, `cpu_bf16` on a
    CPU that computes bf16 natively (elsewhere bf16 is emulated and slower)."""
    if device.type == "cuda":
        return settings.amp
    return device.type == "cpu" and settings.cpu_bf16 and cpu_bf16()


def steps_within(budget_s: float, step_s: float, val_s: float, per_epoch: int, val_every: int) -> int:
    """The most optimiser steps whose training and validations fit in `budget_s` seconds (at least 1)."""

    def seconds(steps: int) -> float:
        epochs = math.ceil(steps / per_epoch)
        validations = epochs // val_every + (1 if epochs % val_every else 0)
        return steps * step_s + validations * val_s

    # seconds() grows with the steps: bisect for the last count that fits (a proportional shrink
    # overshoots where a cut-off epoch saves a validation, and is then neither the most nor monotone)
    low, high = 1, max(1, int(budget_s / max(step_s, 1e-9)))
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if seconds(mid) <= budget_s else (low, mid - 1)
    return low


class Trainer:
    checkpoint_format: str = ""  # set by subclasses
    stage: str = "train"  # the recipe section holding this run's settings
    val_passes: int = 1  # networks one validation evaluates (a time budget's estimate)

    def __init__(
        self,
        recipe: Recipe,
        settings: TrainingSettings,
        source: SegSource,
        run_dir: Path,
        dist: DistInfo | None = None,
        max_epochs: int | None = None,
    ):
        self.recipe, self.tr, self.source = recipe, settings, source
        self.run_dir, self.dist = Path(run_dir), dist or DistInfo()
        self.epochs = self.tr.epochs
        self.stop_after = max_epochs  # stop early (a budget), the schedule stays the recipe's
        self.device = self.dist.device
        self.state = TrainState()
        self._resumed_class_loss: bool | None = None  # a resumed run's class stage (None: not resuming)
        self.val_estimate_s = 0.0  # a time budget: the first plan's estimate of one validation
        # called on every rank after each epoch's checkpoint is written (to report to Ray Tune or Ray Train)
        self.on_epoch_end: Callable[[Trainer], None] | None = None
        self.tensorboard = True  # scalars under <run_dir>/tensorboard (rank 0); False: none
        self._log: ScalarLog | None = None

    # ------------------------------------------------------------------ what subclasses define
    def build_model(self) -> nn.Module:
        """The trained network (on self.device); called after the data is prepared."""
        raise NotImplementedError

    def build_step(self) -> nn.Module:
        """The module one step calls: (images, masks, *step_inputs()) -> (loss, logged values)."""
        raise NotImplementedError

    def step_inputs(self) -> tuple:
        return ()

    def after_step(self) -> None:
        """Called on every rank after each optimisation step."""

    def validate(self) -> dict[str, Any]:
        raise NotImplementedError

    def after_validation(self, record: dict[str, Any]) -> None:
        """Called on rank 0 with the epoch's history record once it holds `val`."""

    def title(self) -> str:
        """The progress bar's label."""
        raise NotImplementedError

    def model_label(self) -> str:
        """What is trained, for error messages (e.g. "supernet 'tiny'")."""
        raise NotImplementedError

    def checkpoint_extra(self) -> dict[str, Any]:
        return {}

    def check_checkpoint(self, ckpt: dict[str, Any]) -> None:
        """Refuse (AutoNADError) a checkpoint this run cannot continue."""

    def restore_extra(self, ckpt: dict[str, Any]) -> None:
        pass

    def run_info(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ set-up
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def setup(self, resume: bool) -> None:
        if self.checkpoint_path.exists() and not resume:
            raise AutoNADError(f"{self.run_dir}: already holds a training run; pass --resume or choose another --out")
        resuming = resume and self.checkpoint_path.exists()
        ckpt = load_checkpoint(self.checkpoint_path, self.checkpoint_format) if resuming else None
        self.data = self.source.fingerprint()
        if ckpt is not None:  # before anything is read or written for the run
            check_same_data(ckpt.get("data"), self.data, str(self.checkpoint_path))
        self.source.verify()  # every file read once now: a corrupt one is refused before any training
        torch.manual_seed(self.tr.seed)
        random.seed(self.tr.seed)
        # a run checkpointed before CaP had its class stage resumes without it, as it was trained
        self._resumed_class_loss = bool(ckpt.get("class_loss", False)) if ckpt is not None else None
        self._prepare_data()
        self.net = self.build_model()
        seg_loss = SegLoss(self.tr.dice_weight, self._class_weights())
        class_weight = self._class_pos_weight() if self.class_loss else None
        self.loss = JointLoss(seg_loss, self.tr.cap_weighting, self.tr.w_seg, self.tr.w_cls, self._pos_weight(),
                              class_weight, self.tr.w_classes)  # fmt: skip
        self.loss.to(self.device)
        self.step_module = self.build_step()
        self.model: nn.Module = self.step_module
        if self.dist.enabled:
            # channels-last convolutions give some weights channels-last gradients, which DDP copies into its
            # contiguous buckets (correct, a little slower) with a multi-line warning per process
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.step_module, device_ids=ids, find_unused_parameters=True)
        self.optimizer = build_optimizer(self.step_module, self.tr.lr, self.tr.weight_decay)
        self.steps_per_epoch = batches_per_epoch(len(self.train_set), self.tr.batch_size)
        self.total_steps, self.budget_note = self._budget(ckpt)
        saved = ckpt["state"] if ckpt is not None else {}
        # a re-planned time budget: epochs (the first may have been cut short) and warm-up as they were planned
        self.epochs = int(saved.get("epochs") or math.ceil(self.total_steps / self.steps_per_epoch))
        self.warmup_steps = saved.get("warmup_steps")
        if self.warmup_steps is None:
            self.warmup_steps = round(self.tr.warmup_epochs * self.steps_per_epoch)
            if self.tr.budgeted:  # a short step budget on a large dataset: warm-up at most a tenth of it
                self.warmup_steps = min(self.warmup_steps, self.total_steps // 10)
        self.scheduler = decay_with_warmup(
            self.optimizer,
            total_steps=lambda: self.total_steps,  # a time budget re-plans it
            warmup_steps=self.warmup_steps,
            min_lr_ratio=self.tr.min_lr_ratio,
            decay=self.tr.schedule,
            power=self.tr.poly_power,
        )
        if ckpt is not None:
            self._restore(ckpt)
        elif self.dist.is_main:
            self._write_run_file()

    def _budget(self, ckpt: dict[str, Any] | None) -> tuple[int, str]:
        """(optimiser steps of the whole run, how they were chosen). Minutes become steps by timing
        a few steps and a validation batch; a resumed run keeps the steps it chose then."""
        tr, per_epoch = self.tr, self.steps_per_epoch
        if tr.steps is not None:
            return tr.steps, f"{tr.steps} steps ({tr.steps / per_epoch:.1f} epochs of {per_epoch} steps)"
        if tr.minutes is None:
            return tr.epochs * per_epoch, f"{tr.epochs} epochs of {per_epoch} steps"
        if ckpt is not None and ckpt.get("state", {}).get("total_steps"):
            self.val_estimate_s = float(ckpt["state"].get("val_estimate_s", 0.0))
            return int(ckpt["state"]["total_steps"]), str(ckpt["state"].get("budget_note", ""))
        step_s, val_s = self._probe_seconds()
        self.val_estimate_s = val_s
        steps = steps_within(tr.minutes * 60, step_s, val_s, per_epoch, tr.val_every)
        steps = from_rank0(steps, self.dist)  # every rank the same schedule
        note = (f"{tr.minutes:g} min -> {steps} steps ({steps / per_epoch:.1f} epochs; measured {step_s:.3f} s/step, "
                f"{val_s:.1f} s/validation)")  # fmt: skip
        return steps, note

    def _probe_seconds(self, steps: int = 6) -> tuple[float, float]:
        """Median seconds of a training step (forward, backward; no update) on real batches and of one
        validation. Weights, buffers, RNG and sampler state are put back, so the run is unchanged."""
        rng, extra = rng_state(), self.checkpoint_extra()
        buffers = {k: v.clone() for k, v in self.step_module.state_dict().items()}
        loader = iter(self._loader())
        times = []
        for _ in range(steps + 1):
            try:
                images, masks = next(loader)
            except StopIteration:
                break
            start = time.perf_counter()
            with self.autocast():
                loss, _ = self.model(self._prepare(images), masks.to(self.device), *self.step_inputs())
            loss.backward()
            synchronize(self.device)
            times.append(time.perf_counter() - start)
        self.optimizer.zero_grad(set_to_none=True)
        self.step_module.load_state_dict(buffers)
        self.restore_extra(extra)
        set_rng_state(rng)
        timed = times[2:] or times  # the first steps set up kernels
        step_s = sorted(timed)[len(timed) // 2] * OPTIMIZER_OVERHEAD
        start = time.perf_counter()
        self.net.eval()
        with torch.no_grad(), self.autocast():
            images, _ = next(iter(eval_loader(self.val_set, self.tr.batch_size)))
            self.net(self._prepare(images))
        synchronize(self.device)
        self.net.train()
        batches = math.ceil(len(self.val_set) / self.tr.batch_size)
        return step_s, (time.perf_counter() - start) * batches * self.val_passes

    def _prepare_data(self) -> None:
        src = self.source
        split_file = self.run_dir / "split.json"
        recorded = split_file.exists()
        if self.dist.is_main and not recorded:
            src.save_split(split_file)
        barrier(self.dist)  # other ranks train on the split rank 0 recorded (the run folder is shared)
        if recorded or not self.dist.is_main:
            src.use_split(split_file)
        if not src.splits["train"] or not src.splits["val"]:
            raise AutoNADError(f"{src.name}: the train and val splits must not be empty")
        transform = self.recipe.transform
        if self.recipe.normalise == "dataset":
            mean, std = compute_norm_stats(src, ids=src.splits["train"], seed=self.tr.seed)
            transform = dataclasses.replace(transform, mean=tuple(mean), std=tuple(std))
        self.transform_config = transform
        # CaP learns defect presence: where every training image is defective the label is always 1 and
        # its loss only takes gradient from the segmentation (measured: it slows learning), so it is off
        self.cap_loss = self.tr.cap and not all(src.present(i) for i in src.splits["train"])
        if self.tr.cap and not self.cap_loss and self.dist.is_main:
            console.print("CaP presence stage off: every training image is defective, so defect presence is trivial")
        # the class stage learns which defect classes a defective sample has: trivial with one defect class
        wanted = self.tr.cap and self.has_class_logits()
        self.class_loss = wanted and src.num_classes > 2 and self._resumed_class_loss is not False
        if wanted and not self.class_loss and self.dist.is_main:
            why = ("the dataset has one defect class, so the class is the presence" if src.num_classes <= 2 else
                   "the run being resumed was started without it")  # fmt: skip
            console.print(f"CaP class stage off: {why}")
        self.train_set = SegmentationDataset(src, "train", Transform(transform, train=True), seed=self.tr.seed)
        val = SegmentationDataset(src, "val", Transform(transform, train=False))
        limit = self.tr.val_images
        self.val_set = Subset(val, range(min(limit, len(val)))) if limit else val

    def _class_weights(self) -> torch.Tensor | None:
        if self.tr.class_weights == "none":
            return None
        train = set(self.source.splits["train"])
        counts = [0] * self.source.num_classes
        for info in self.source.verify():
            if info.id in train:
                counts = [c + p for c, p in zip(counts, info.pixels)]  # last entry (ignore) dropped by zip
        return sqrt_inverse_frequency(counts)

    def has_class_logits(self) -> bool:
        """Whether the network being trained has CaP class logits (stage 2) to train (default: no)."""
        return False

    def _class_pos_weight(self) -> torch.Tensor:
        train, k = set(self.source.splits["train"]), self.source.num_classes
        defects = [info.pixels[1:k] for info in self.source.verify() if info.id in train]
        return class_balanced_pos_weight([[n > 0 for n in d] for d in defects if any(d)] or [[True] * (k - 1)])

    def _pos_weight(self) -> float | None:
        if not self.tr.cap_balance:
            return None
        labels = [bool(self.source.present(i)) for i in self.source.splits["train"]]
        pos = sum(labels)
        return (len(labels) - pos) / pos if pos else None

    @property
    def normalisation(self) -> dict[str, list[float]]:
        return {"mean": list(self.transform_config.mean), "std": list(self.transform_config.std)}

    # ------------------------------------------------------------------ loop
    def before_training(self) -> None:
        """Called once the run is set up, before its first step of this invocation (default: nothing)."""

    def fit(self, resume: bool = False) -> TrainState:
        self.setup(resume)
        self.before_training()
        st, last_save, self._clock = self.state, time.monotonic(), time.monotonic()
        first = st.global_step
        self._log = open_log(self.run_dir, self.tensorboard and self.dist.is_main, logged_until=first)
        try:
            self._train(first, last_save)
        finally:
            if self._log is not None:
                self._log.close()
        barrier(self.dist)
        return st

    def _train(self, first: int, last_save: float) -> None:
        st = self.state
        with progress(disable=not self.dist.is_main or self._last_step() <= first) as bar:
            task = bar.add_task(self.title(), total=max(self._last_step() - first, 0))
            while st.epoch < min(self.epochs, self.stop_after or self.epochs):
                for images, masks in self._loader():
                    if st.global_step >= self.total_steps:
                        break
                    st.epoch_losses.append(self._step(self._prepare(images), masks.to(self.device)))
                    if self._log is not None:
                        self._log.scalars("train", st.epoch_losses[-1], st.global_step + 1)
                    st.step_in_epoch += 1
                    st.global_step += 1
                    bar.update(task, advance=1, description=self._describe(st.epoch_losses[-1]))
                    minutes = (time.monotonic() - last_save) / 60
                    every = self.tr.checkpoint_steps
                    if minutes >= self.tr.checkpoint_minutes or (every and st.global_step % every == 0):
                        self.save()
                        last_save = time.monotonic()
                self._end_epoch()
                bar.update(task, total=max(self._last_step() - first, 0))  # a time budget may re-plan
                self.save()
                last_save = time.monotonic()
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self)

    def _last_step(self) -> int:
        """The step this invocation trains to: the budget's, or the end of epoch --max-epochs."""
        return min(self.total_steps, min(self.epochs, self.stop_after or self.epochs) * self.steps_per_epoch)

    def _loader(self) -> DataLoader:
        st = self.state
        defective = None
        if self.tr.defect_share is not None:
            defective = [bool(self.source.present(i)) for i in self.train_set.ids]
        batches = EpochBatches(
            len(self.train_set), self.tr.batch_size, self.tr.seed, st.epoch, st.step_in_epoch,
            self.dist.rank, self.dist.world, defective, self.tr.defect_share,
        )  # fmt: skip
        # An own generator: creating a DataLoader iterator otherwise draws from the global torch RNG,
        # and a resumed run (which creates one mid-epoch) would then diverge from an uninterrupted one.
        generator = torch.Generator().manual_seed(self.tr.seed + st.epoch)
        return DataLoader(self.train_set, batch_sampler=batches, num_workers=self.tr.workers, generator=generator,
                          pin_memory=self.device.type == "cuda")  # fmt: skip

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device, channels-last where the recipe asks (faster convolutions on CPU)."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.tr.channels_last else images

    def _step(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
        inputs = self.step_inputs()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, logged = self.model(images, masks, *inputs)
        loss.backward()
        grads = [p.grad for p in self.step_module.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)  # clipped only when finite: the fall-back names the culprit
        if torch.isfinite(norm):  # gradients are all-reduced: every rank decides alike
            torch.nn.utils.clip_grads_with_norm_(self.step_module.parameters(), self.tr.grad_clip or math.inf, norm)
            self.optimizer.step()
            self._diverged = 0
        else:
            self._fall_back_to_fp32()
            self._skip_step(loss)
        self.scheduler.step()
        self.after_step()
        logged = mean_across_ranks(logged, self.dist)  # every rank logs (and checkpoints) the same values
        logged["lr"] = self.optimizer.param_groups[0]["lr"]
        return logged

    def _skip_step(self, loss: torch.Tensor) -> None:
        """A non-finite gradient (or loss) skips the update instead of turning every weight into NaN;
        a run that keeps producing them has diverged and stops with one line."""
        self.optimizer.zero_grad(set_to_none=True)
        self.state.skipped_steps += 1
        self._diverged = getattr(self, "_diverged", 0) + 1
        if self._diverged >= MAX_SKIPPED_IN_A_ROW:
            raise AutoNADError(
                f"training diverged: {self._diverged} steps in a row had non-finite gradients (step "
                f"{self.state.global_step + 1}, loss {float(loss):.4g}); lower the lr or turn off cpu_bf16/amp"
            )

    def _fall_back_to_fp32(self) -> None:
        """The first non-finite step of a bf16 run turns bf16 off for the rest of it: where it stays finite
        bf16 trains as well and faster (measured on the thin-defect data: 1.2x supernet, 1.5x retraining
        images/s, the same losses), and a run that leaves it loses no more of its budget to skipped steps."""
        if self.bf16:
            self.state.fp32_since = self.state.global_step + 1
            named = self.step_module.named_parameters()
            bad = (n for n, p in named if p.grad is not None and not torch.isfinite(p.grad).all())
            where = next(bad, "none, the norm overflowed")
            console.print(
                f"step {self.state.fp32_since}: non-finite gradients under bf16 (first: {where}); fp32 from here on"
            )

    @property
    def bf16(self) -> bool:
        """bf16 autocast where the recipe asks for it: on a GPU (amp), on a CPU with native bf16 (cpu_bf16),
        until a non-finite step turns it off (`TrainState.fp32_since`)."""
        return use_bf16(self.tr, self.device) and self.state.fp32_since is None

    def autocast(self):
        return bf16_autocast(self.device, self.bf16)

    def _end_epoch(self) -> None:
        st = self.state
        self._tick()
        if self.tr.minutes is not None and (st.global_step < self.total_steps or st.epoch == 0):
            # before deciding whether this epoch is the last one (and so validated); a run that reached its
            # planned total after the first epoch stops there rather than growing a tail of a step or two
            self._replan()
        losses = st.epoch_losses
        keys = dict.fromkeys(k for d in losses for k in d)  # every step's keys (a resumed epoch may have older ones)
        mean = {k: sum(d[k] for d in losses if k in d) / sum(k in d for d in losses) for k in keys}
        record: dict[str, Any] = {
            "epoch": st.epoch + 1,
            "step": st.global_step,
            **{k: round(v, 6) for k, v in mean.items()},
        }
        record["images_per_s"] = round(len(losses) * self.tr.batch_size / max(st.epoch_s, 1e-9), 2)
        if st.fp32_since is not None:
            record["fp32_since"] = st.fp32_since
        last = st.epoch + 1 == self.epochs or st.global_step >= self.total_steps
        due = (st.epoch + 1) % self.tr.val_every == 0 or last
        if due and self.dist.is_main:
            start = time.monotonic()
            record["val"] = self.validate()
            self.after_validation(record)
            st.val_s += time.monotonic() - start
            st.validations += 1
        st.history.append(record)
        if self._log is not None:
            self._log.scalars("epoch", {k: v for k, v in record.items() if k not in ("epoch", "step", "val")},
                              st.global_step)  # fmt: skip
            self._log.scalars("val", record.get("val", {}), st.global_step)
            self._log.flush()
        st.epoch += 1
        st.step_in_epoch = 0
        self._tick()  # validation counts in the run's time, not in the next epoch's
        st.epoch_losses, st.epoch_s = [], 0.0
        if st.global_step >= self.total_steps:
            st.epoch = self.epochs  # the budget is spent: the run is done even if the last epoch was cut short

    def _replan(self) -> None:
        """A time budget, after each epoch: the steps that fit in the time left at the speed measured so
        far (the first plan comes from a few timed steps, which one-time costs such as kernel set-up for
        new shapes inflate). The schedule follows the new total; a resumed run starts from the last plan."""
        st, budget_s = self.state, self.tr.minutes * 60
        step_s = max(st.elapsed_s - st.val_s, 1e-9) / max(st.global_step, 1)
        val_s = st.val_s / st.validations if st.validations else self.val_estimate_s
        left = budget_s - st.elapsed_s
        extra = steps_within(left, step_s, val_s, self.steps_per_epoch, self.tr.val_every) if left > step_s else 0
        if extra >= self.steps_per_epoch:
            extra -= extra % self.steps_per_epoch  # whole epochs: a short one only ends a run with no room for more
        total = from_rank0(st.global_step + extra, self.dist)  # rank 0 alone validates, so it knows the cost
        self.total_steps = max(total, st.global_step)
        # epochs so far, this one included (the first may have been cut short by the first plan), plus
        # those the rest needs
        self.epochs = st.epoch + 1 + math.ceil((self.total_steps - st.global_step) / self.steps_per_epoch)
        self.budget_note = (f"{self.tr.minutes:g} min -> {self.total_steps} steps (planned at step {st.global_step}: "
                            f"{step_s:.3f} s/step, {val_s:.1f} s/validation measured)")  # fmt: skip

    def _describe(self, logged: dict[str, float]) -> str:
        st = self.state
        return f"epoch {st.epoch + 1}/{self.epochs} loss {logged['loss']:.4f} lr {logged['lr']:.2e}"

    # ------------------------------------------------------------------ persistence
    def _tick(self) -> None:
        """Add the time since the last tick to the run's and the epoch's seconds."""
        now = time.monotonic()
        self.state.elapsed_s += now - self._clock
        self.state.epoch_s += now - self._clock
        self._clock = now

    def save(self) -> None:
        if not self.dist.is_main:
            return
        st = self.state
        self._tick()
        payload = {
            "format": self.checkpoint_format,
            "autonad_version": __version__,
            "recipe": self.recipe.to_dict(),
            "classes": list(self.source.classes),
            "data": self.data,
            "normalisation": self.normalisation,
            "model": self.net.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "state": {"epoch": st.epoch, "step_in_epoch": st.step_in_epoch, "global_step": st.global_step,
                      "elapsed_s": st.elapsed_s, "epoch_losses": st.epoch_losses, "epoch_s": st.epoch_s,
                      "best": st.best, "total_steps": self.total_steps, "budget_note": self.budget_note,
                      "val_s": st.val_s, "validations": st.validations, "val_estimate_s": self.val_estimate_s,
                      "epochs": self.epochs, "warmup_steps": self.warmup_steps, "skipped_steps": st.skipped_steps,
                      "fp32_since": st.fp32_since},
            "history": st.history,
            "latency_records": st.latency_records,
            "cap_loss": self.cap_loss,
            "class_loss": self.class_loss,
            **self.checkpoint_extra(),
        }  # fmt: skip
        save_atomic(payload, self.checkpoint_path)
        write_text_atomic(self.run_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in st.history))

    def _restore(self, ckpt: dict[str, Any]) -> None:
        path = self.checkpoint_path
        try:
            self.check_checkpoint(ckpt)
            check_same_run(ckpt, self.source.classes, self.recipe, self.stage, path)
            check_weights(ckpt["model"], self.net, f"{path}: its weights do not fit {self.model_label()}")
            check_weights(ckpt["loss"], self.loss, f"{path}: its loss state does not fit recipe '{self.recipe.name}'")
            self.net.load_state_dict(ckpt["model"])
            self.loss.load_state_dict(ckpt["loss"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.restore_extra(ckpt)
            s = ckpt["state"]
            self.state = TrainState(
                s["epoch"], s["step_in_epoch"], s["global_step"], list(ckpt["history"]), list(ckpt["latency_records"]),
                s["elapsed_s"], _renamed_losses(s.get("epoch_losses", [])), s.get("epoch_s", 0.0),
                dict(s.get("best", {})), float(s.get("val_s", 0.0)), int(s.get("validations", 0)),
                int(s.get("skipped_steps", 0)), s.get("fp32_since"),
            )  # fmt: skip
            set_rng_state(ckpt["rng"])  # last: building the model above drew from the generators
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
            raise AutoNADError(
                f"{path}: incomplete or damaged training checkpoint, cannot resume from it ({e.__class__.__name__}: "
                f"{reason(e, 160)})"
            ) from None

    def _write_run_file(self) -> None:
        info = {
            "dataset": {"name": self.source.name, "root": str(self.source.root.resolve()) if self.source.root else None,
                        "classes": list(self.source.classes), "split": self.source.split_origin},
            **self.run_info(),
            "budget": {"steps": self.total_steps, "epochs": self.epochs, "how": self.budget_note},
            "cap_loss": self.cap_loss,
            "class_loss": self.class_loss,
            "recipe": self.recipe.to_dict(),
            "normalisation": self.normalisation,
            "device": device_name(self.device),
            "world_size": self.dist.world,
            "autonad_version": __version__,
            "torch_version": str(torch.__version__),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }  # fmt: skip
        dump_yaml(info, self.run_dir / "run.yaml")


def finished(state: dict[str, Any], settings: TrainingSettings) -> bool:
    """Whether a checkpoint's training state has spent its budget (older checkpoints: all epochs)."""
    if state.get("total_steps"):
        return state["global_step"] >= state["total_steps"]
    return state["epoch"] >= settings.epochs


def _renamed_losses(losses: list[dict[str, float]]) -> list[dict[str, float]]:
    """Per-step losses of a checkpoint, CaP's presence loss under its name (logged as `cls` before)."""
    return [{("presence" if k == "cls" else k): v for k, v in d.items()} for d in losses]


def check_same_run(ckpt: dict[str, Any], classes: list[str], recipe: Recipe, stage: str, path: Path) -> None:
    """Refuse, naming what differs, a checkpoint trained on other classes or with another recipe than
    a run of `stage` with `recipe` would use (a resume, or a search reusing a finished supernet)."""
    if list(ckpt["classes"]) != list(classes):
        raise AutoNADError(f"{path}: was trained on classes {ckpt['classes']}, the dataset has {list(classes)}")
    then, now = training_part(ckpt["recipe"], stage), training_part(recipe.to_dict(), stage)
    if then != now:
        key, old, new = first_difference(then, now)
        raise AutoNADError(f"{path}: was trained with recipe '{ckpt['recipe'].get('name')}' as it was then; "
                           f"it has changed ({key}: {old} then, {new} now)")  # fmt: skip


def first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any]:
    """The first (dotted key, value in a, value in b) where two nested mappings differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return where, a, b


def training_part(recipe: dict[str, Any], stage: str = "train") -> dict[str, Any]:
    """What of a recipe shapes a run of `stage` ("train": the supernet, "retrain": a subnet): the
    data settings and that stage's own section. Defaults are filled in first, so a recipe saved
    before a setting existed still matches one that states that setting's default."""
    full = from_mapping(Recipe, recipe, "recipe").to_dict()
    part = {k: v for k, v in full.items() if k in ("transform", "normalise", stage)}
    if stage == "retrain":  # the decision rule and its thresholds are calibrated after training
        part["retrain"] = {k: v for k, v in part["retrain"].items() if k not in ("calibrate", "rule", "per_class")}
    return part


def check_weights(saved: dict[str, torch.Tensor], module: nn.Module, problem: str) -> None:
    """One line naming the first tensors that a saved state dict lacks, adds or shapes differently."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    reshaped = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in saved and saved[k].shape != expected[k].shape
    ]
    parts = [
        f"{label} {', '.join(items[:3])}{f' (+{len(items) - 3} more)' if len(items) > 3 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", reshaped))
        if items
    ]
    if parts:
        raise AutoNADError(f"{problem} as the code defines it now ({'; '.join(parts)})")
