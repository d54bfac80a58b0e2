"""Supernet training (SPEC section 5): one run per (dataset, supernet definition, recipe).

A run folder holds `run.yaml` (what was trained, on what, with which normalisation),
`split.json`, `history.jsonl` (per-epoch loss and validation of the largest, smallest and a
fixed random subnet) and `checkpoint.pt`, written atomically every epoch, every N minutes and
optionally every N steps. The checkpoint carries model, optimizer, scheduler, loss, sampler and
RNG states plus the history, the latency records and the current epoch's logged losses so far, so
`resume` continues bit for bit (tests/train/test_resume.py kills a run with SIGKILL to check).
The loop itself is `autonad.train.loop.Trainer`, shared with subnet retraining.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autonad.config import from_mapping, to_mapping
from autonad.data import SegSource, check_same_data, eval_loader
from autonad.errors import AutoNADError
from autonad.space import Arch, HeadsArch, SearchSpace
from autonad.supernet import Supernet, SupernetConfig
from autonad.supernet.config import same_config, saved_config
from autonad.timing import device_name, median_ms
from autonad.train.checkpoint import load_checkpoint
from autonad.train.distributed import DistInfo
from autonad.train.evaluate import accumulate_arch
from autonad.train.loop import (
    Trainer,
    TrainState,
    check_same_run,
    check_weights,
    finished,
    first_difference,
    training_part,
)
from autonad.train.losses import JointLoss, distill_loss
from autonad.train.recipe import Recipe
from autonad.train.sampler import ArchSampler

__all__ = ["CHECKPOINT_FORMAT", "SupernetTrainer", "TrainState", "TrainedSupernet", "load_trained_supernet",
           "training_part"]  # fmt: skip

CHECKPOINT_FORMAT = "autonad-supernet/1"
VAL_ARCHS = ("largest", "smallest", "random")
VAL_METRICS = ("miou", "miou_fg", "mf1", "sample_miou", "seg_recall")


class TrainStep(nn.Module):
    """One optimisation step's forward: every sampled subnet on the batch, summed into one loss.

    Wrapping this (not the bare supernet) in DDP gives one forward and one backward per step even
    when the sandwich rule trains several subnets, and keeps learned loss weights in sync.
    """

    def __init__(self, net: Supernet, loss: JointLoss, distill_weight: float):
        super().__init__()
        self.net, self.loss, self.distill_weight = net, loss, distill_weight

    def forward(self, images: torch.Tensor, masks: torch.Tensor, archs: list[Arch], distill: bool):
        total, logged, teacher = 0.0, {}, None
        for i, arch in enumerate(archs):
            self.net.set_arch(arch)
            out = self.net(images)
            loss, parts = self.loss(out["seg"].float(), masks, out.get("cap"), out.get("cls"))
            if distill and i == 0:
                teacher = out["seg"].detach().float()
            elif distill:
                kd = distill_loss(out["seg"].float(), teacher)
                loss = loss + self.distill_weight * kd
                parts["distill"] = kd.item()
            total = total + loss
            for k, v in parts.items():
                logged[k] = logged.get(k, 0.0) + v / len(archs)
        logged["loss"] = total.item() / len(archs)
        return total / len(archs), logged


class SupernetTrainer(Trainer):
    checkpoint_format = CHECKPOINT_FORMAT
    stage = "train"
    val_passes = len(VAL_ARCHS)

    def __init__(
        self,
        recipe: Recipe,
        config: SupernetConfig,
        source: SegSource,
        run_dir: Path,
        dist: DistInfo | None = None,
        max_epochs: int | None = None,
    ):
        super().__init__(recipe, recipe.train, source, run_dir, dist, max_epochs)
        self.config = config

    def title(self) -> str:
        return f"supernet {self.config.name} on {self.source.name}"

    def model_label(self) -> str:
        return f"supernet '{self.config.name}'"

    def build_model(self) -> nn.Module:
        net = Supernet(self.config, num_classes=self.source.num_classes).to(self.device)
        self.heads = HeadsArch(cap=self.config.heads.cap and self.cap_loss, classes=self.class_loss)
        self.sampler = ArchSampler(net.space, self.tr.sampler, self.tr.sandwich_random, self.tr.seed, self.heads)
        self.val_archs = {
            "largest": net.space.largest(heads=self.heads),
            "smallest": net.space.smallest(heads=self.heads),
            "random": net.space.sample(random.Random(self.tr.seed + 7919), heads=self.heads),
        }
        return net

    def has_class_logits(self) -> bool:
        return self.config.heads.cap and self.config.heads.multilabel

    def build_step(self) -> nn.Module:
        return TrainStep(self.net, self.loss, self.tr.distill_weight)

    def step_inputs(self) -> tuple:
        self._archs = self.sampler.next()
        return self._archs, self.sampler.distills

    def after_step(self) -> None:
        every = self.tr.latency_every
        if every and self.dist.is_main and self.state.global_step % every == 0:
            self._record_latency(self._archs[0])

    def _record_latency(self, arch: Arch) -> None:
        """Paper IV-D: time the sampled subnet's inference on the training device (batch 1)."""
        net = self.net
        net.set_arch(arch)
        net.eval()
        x = torch.zeros(1, 3, *self.recipe.input_size, device=self.device)
        with torch.no_grad(), self.autocast():
            ms = median_ms(lambda: net(x), self.device, warmup=2, repeats=5)
        net.train()
        self.state.latency_records.append(
            {"step": self.state.global_step, "arch": arch.to_dict(), "ms": round(ms, 4), "batch": 1,
             "input_size": list(self.recipe.input_size), "device": device_name(self.device)}
        )  # fmt: skip

    def validate(self) -> dict[str, dict[str, float | None]]:
        # rank 0 validates alone, with the global batch (so 1 and N processes validate alike); an own generator
        # leaves the global RNG alone
        loader = eval_loader(self.val_set, self.tr.batch_size)
        out = {}
        for name, arch in self.val_archs.items():
            report = accumulate_arch(self.net, arch, loader, self.source.classes, self.device, self.bf16).compute()
            out[name] = {k: report.to_dict()[k] for k in VAL_METRICS}
        return out

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"supernet_config": to_mapping(self.config), "search_space": to_mapping(self.net.space),
                "sampler": self.sampler.state_dict()}  # fmt: skip

    def check_checkpoint(self, ckpt: dict[str, Any]) -> None:
        check_supernet_config(ckpt, self.config, self.checkpoint_path)

    def restore_extra(self, ckpt: dict[str, Any]) -> None:
        self.sampler.load_state_dict(ckpt["sampler"])

    def run_info(self) -> dict[str, Any]:
        return {"supernet": to_mapping(self.config)}


@dataclass
class TrainedSupernet:
    """A supernet checkpoint loaded for use (search, export): the net and what it was trained with."""

    net: Supernet
    config: SupernetConfig
    recipe: Recipe
    classes: list[str]
    normalisation: dict[str, list[float]]
    step: int | None
    cap_trained: bool = True  # whether CaP's presence stage was trained (off where every training image is defective)
    classes_trained: bool = False  # whether CaP's class stage was trained (checkpoints before it existed: never)

    @property
    def heads(self) -> HeadsArch:
        """The heads its subnets are evaluated and exported with: each CaP stage only where it was trained."""
        cap = self.config.heads.cap and self.recipe.train.cap
        return HeadsArch(
            cap=cap and self.cap_trained, classes=cap and self.config.heads.multilabel and self.classes_trained
        )


def finished_supernet(
    path: Path, recipe: Recipe, config: SupernetConfig, classes: list[str], data: dict[str, Any] | None = None
) -> bool:
    """Whether the supernet checkpoint at `path` has finished its training (a search then reuses it);
    a one-line error first if it was trained for other classes, another supernet definition or
    another recipe than the ones given (a reused checkpoint must be what a new run would train)."""
    ckpt = load_checkpoint(path, CHECKPOINT_FORMAT)
    check_supernet_config(ckpt, config, path)
    check_same_run(ckpt, classes, recipe, "train", path)
    if data is not None:
        check_same_data(ckpt.get("data"), data, str(path))
    return finished(ckpt["state"], recipe.train)


def check_supernet_config(ckpt: dict[str, Any], config: SupernetConfig, path: Path) -> None:
    """Refuse a checkpoint of another supernet definition, or of its search space as it was before an
    edit (a shipped or user space file changed under the same name), naming the first difference."""
    if not same_config(ckpt["supernet_config"], config):
        theirs = ckpt["supernet_config"].get("name", "?")
        raise AutoNADError(f"{path}: was trained for supernet '{theirs}', which differs from '{config.name}' as "
                           "defined now")  # fmt: skip
    if "search_space" in ckpt:
        then = _space_structure(SearchSpace.from_dict(ckpt["search_space"], f"{path}: search_space"))
        now = _space_structure(SearchSpace.load(config.search_space))
        if then != now:
            key, old, new = first_difference(then, now)
            raise AutoNADError(f"{path}: was trained on search space '{config.search_space}' as it was then; it has "
                               f"changed ({key}: {old} then, {new} now); move {path.parent} away to train "
                               "a new supernet")  # fmt: skip
    else:  # written before checkpoints recorded their space: the weights must still fit it (edits that keep every
        # tensor's shape, e.g. another detail_stride or pool sizes, cannot be told apart)
        net = Supernet(config, len(ckpt["classes"]))
        check_weights(ckpt["model"], net, f"{path}: its weights do not fit search space '{net.space.name}'")


def _space_structure(space: SearchSpace) -> dict[str, Any]:
    """What of a space the supernet's weights depend on (its name and description do not count)."""
    return {k: v for k, v in to_mapping(space).items() if k not in ("name", "description")}


def load_trained_supernet(path: str | Path, device: torch.device | str = "cpu") -> TrainedSupernet:
    """Rebuild the supernet a training checkpoint holds, in eval mode; problems are one line."""
    path = Path(path)
    ckpt = load_checkpoint(path, CHECKPOINT_FORMAT)
    try:
        config = saved_config(ckpt["supernet_config"], f"{path}: supernet_config")
        recipe = from_mapping(Recipe, ckpt["recipe"], f"{path}: recipe")
        classes = [str(c) for c in ckpt["classes"]]
        norm = {"mean": list(ckpt["normalisation"]["mean"]), "std": list(ckpt["normalisation"]["std"])}
        state, step = ckpt["model"], ckpt.get("state", {}).get("global_step")
        cap_trained = bool(ckpt.get("cap_loss", True))  # checkpoints before the switch trained it
        classes_trained = bool(ckpt.get("class_loss", False))
    except KeyError as e:
        raise AutoNADError(f"{path}: incomplete supernet checkpoint (no {e})") from None
    space = SearchSpace.from_dict(ckpt["search_space"], f"{path}: search_space") if "search_space" in ckpt else None
    net = Supernet(config, len(classes), space)  # the space it was trained on, even if its file has changed since
    check_weights(state, net, f"{path}: its weights do not fit supernet '{config.name}'")
    net.load_state_dict(state)
    return TrainedSupernet(net.to(device).eval(), config, recipe, classes, norm, step, cap_trained, classes_trained)
