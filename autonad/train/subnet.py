"""Retraining one searched subnet as a standalone model (paper V-B), e.g. on a new product line.

The subnet is extracted as plain layers (`Supernet.extract`), from a trained supernet's weights
(`init="supernet"`) or from a fresh supernet's initialisation (`init="scratch"`). When the dataset's
classes differ from the supernet's, the class-specific layers (`Supernet.class_specific_keys`) start
new and every other weight is kept. Training runs the shared loop (`autonad.train.loop`) with the
recipe's `retrain` settings: the run folder holds `checkpoint.pt` (resumable, bit for bit),
`best.pt` (the weights of the best validation epoch by `retrain.select`, written atomically when
it improves), `history.jsonl`, `split.json` and `run.yaml`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autonad.config import from_mapping, to_mapping
from autonad.data import SegSource, eval_loader
from autonad.errors import AutoNADError
from autonad.metrics import SegMetrics
from autonad.space import Arch, HeadsArch, SearchSpace
from autonad.supernet import SegmentationNet, Supernet, SupernetConfig, build_subnet
from autonad.supernet.config import same_config, saved_config
from autonad.train.checkpoint import load_checkpoint, save_atomic
from autonad.train.distributed import DistInfo
from autonad.train.evaluate import accumulate
from autonad.train.loop import Trainer, check_weights
from autonad.train.losses import JointLoss
from autonad.train.recipe import Recipe
from autonad.train.trainer import VAL_METRICS, TrainedSupernet, load_trained_supernet
from autonad.ui import console

RETRAIN_FORMAT = "autonad-retrain/1"  # checkpoint.pt: everything to resume
SUBNET_FORMAT = "autonad-subnet/1"  # best.pt: a trained standalone subnet and what it needs to run


@dataclass(frozen=True)
class RetrainJob:
    """What to retrain (`autonad retrain`, each `autonad tune` trial): the arch with its heads, the
    supernet definition it belongs to, the recipe and the supernet weights to start from."""

    arch: Arch
    config: SupernetConfig
    recipe: Recipe
    checkpoint: Path | None  # supernet weights to start from (None: scratch)

    @staticmethod
    def for_arch(arch: Arch, config: SupernetConfig, recipe: Recipe, checkpoint: Path | None,
                 cap: bool | None = None, where: str = "arch") -> RetrainJob:  # fmt: skip
        """The job for `arch`, its CaP head on as `cap` says (None: where the arch has one and the
        recipe's `retrain.cap` trains it), with both stages where the supernet has them (the trainer
        leaves out a stage the data cannot train), checked against the supernet's space and heads."""
        cap = arch.heads.cap_head and recipe.retrain.cap if cap is None else cap
        arch = dataclasses.replace(arch, heads=HeadsArch(cap=cap, classes=cap and config.heads.multilabel))
        SearchSpace.load(config.search_space).validate(arch, f"{where}: in supernet '{config.name}'")
        if cap and not config.heads.cap:
            raise AutoNADError(f"--cap: supernet '{config.name}' has no CaP head (heads.cap: false)")
        return RetrainJob(arch, config, recipe, checkpoint)

    @property
    def init(self) -> str:
        return "scratch" if self.checkpoint is None else "supernet"

    def load_supernet(self) -> TrainedSupernet | None:
        return None if self.checkpoint is None else load_trained_supernet(self.checkpoint)

    def trainer(self, source: SegSource, run_dir: Path, dist: DistInfo | None = None,
                max_epochs: int | None = None) -> SubnetTrainer:  # fmt: skip
        return SubnetTrainer(self.recipe, self.config, self.arch, source, run_dir, self.load_supernet(), dist,
                             max_epochs)  # fmt: skip


class SubnetStep(nn.Module):
    """One step's forward for a fixed network: output, joint loss, logged parts."""

    def __init__(self, net: nn.Module, loss: JointLoss):
        super().__init__()
        self.net, self.loss = net, loss

    def forward(self, images: torch.Tensor, masks: torch.Tensor):
        out = self.net(images)  # only the CaP outputs whose stage is trained (`build_model`)
        loss, logged = self.loss(out["seg"].float(), masks, out.get("cap"), out.get("cls"))
        logged["loss"] = loss.item()
        return loss, logged


def initial_subnet(
    arch: Arch, config: SupernetConfig, classes: list[str], supernet: TrainedSupernet | None
) -> tuple[SegmentationNet, list[str]]:
    """The subnet to start from and the class-specific weights that start new (none from scratch).

    A fresh supernet (drawn from torch's current generator) supplies the initialisation; a trained
    supernet's weights replace it everywhere except in layers tied to another class list."""
    fresh = Supernet(config, len(classes), supernet.net.space if supernet is not None else None)  # its space as trained
    new_heads: list[str] = []
    if supernet is not None:
        if to_mapping(supernet.config) != to_mapping(config):
            raise AutoNADError(f"the supernet checkpoint is of supernet '{supernet.config.name}', not '{config.name}'")
        new_heads = [] if list(supernet.classes) == list(classes) else fresh.class_specific_keys()
        inherited = {k: v for k, v in supernet.net.state_dict().items() if k not in new_heads}
        fresh.load_state_dict(inherited, strict=False)
    fresh.space.validate(arch, "arch")
    return fresh.extract(arch), new_heads


class StandaloneTrainer(Trainer):
    """Trains one fixed network (no supernet): a retrained subnet or a baseline. Keeps `best.pt`,
    the weights of the best validation epoch by `retrain.select`, written atomically when it
    improves; subclasses say what the network is (`build_model`) and what `best.pt` holds."""

    stage = "retrain"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def best_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def build_step(self) -> nn.Module:
        return SubnetStep(self.net, self.loss)

    def metrics(self) -> SegMetrics:
        return SegMetrics(self.source.num_classes, class_names=self.source.classes)

    def validate(self) -> dict[str, float | None]:
        loader = eval_loader(self.val_set, self.tr.batch_size)
        report = accumulate(self.net, loader, self.metrics(), self.device, self.bf16).compute()
        values = report.to_dict()
        return {k: values[k] for k in VAL_METRICS}

    def after_validation(self, record: dict[str, Any]) -> None:
        value = record["val"][self.tr.select]
        value = float("-inf") if value is None else value
        if not self.state.best or value > self.state.best["value"]:
            self.state.best = {"epoch": record["epoch"], "metric": self.tr.select, "value": value,
                               "val": record["val"]}  # fmt: skip
            save_atomic(self.best_payload(), self.best_path)


class SubnetTrainer(StandaloneTrainer):
    checkpoint_format = RETRAIN_FORMAT

    def __init__(
        self,
        recipe: Recipe,
        config: SupernetConfig,
        arch: Arch,
        source: SegSource,
        run_dir: Path,
        supernet: TrainedSupernet | None = None,
        dist: DistInfo | None = None,
        max_epochs: int | None = None,
    ):
        super().__init__(recipe, recipe.retrain, source, run_dir, dist, max_epochs)
        self.config, self.arch, self.supernet = config, arch, supernet
        self.init = "supernet" if supernet is not None else "scratch"
        self.new_heads: list[str] = []

    def title(self) -> str:
        return f"retrain {self.arch.hash[:8]} on {self.source.name}"

    def model_label(self) -> str:
        return f"subnet {self.arch.hash} of supernet '{self.config.name}'"

    def has_class_logits(self) -> bool:
        return self.arch.heads.classes

    def build_model(self) -> nn.Module:
        heads = self.arch.heads
        trained = HeadsArch(cap=heads.cap and self.cap_loss, classes=heads.classes and self.class_loss)
        if trained != heads:
            # an untrained CaP output would gate the exported model's decisions at random: drop it
            self.arch = dataclasses.replace(self.arch, heads=trained)
            left = [name for name, on in (("presence", heads.cap and not trained.cap),
                                          ("class", heads.classes and not trained.classes)) if on]  # fmt: skip
            if self.dist.is_main:
                console.print(f"CaP {' and '.join(left)} output left out of the retrained model: without its loss "
                              "it would stay untrained")  # fmt: skip
        net, self.new_heads = initial_subnet(self.arch, self.config, list(self.source.classes), self.supernet)
        self.net_space = SearchSpace.from_dict(json.loads(net.metadata["search_space_def"]))
        self.supernet = None  # its weights are copied; free the memory
        return net.to(self.device)

    def before_training(self) -> None:
        """A fresh run from supernet weights validates them first (`best.pt` epoch 0): unless an epoch
        beats them, the inherited weights are what it keeps, so a short fine-tuning cannot export a
        worse model than it started from. Not where the class heads start new."""
        st = self.state
        if self.init == "supernet" and not self.new_heads and st.global_step == 0 and not st.best and self.dist.is_main:
            self.after_validation({"epoch": 0, "val": self.validate()})

    def best_payload(self) -> dict[str, Any]:
        return {
            "format": SUBNET_FORMAT,
            "arch": self.arch.to_dict(),
            "supernet_config": to_mapping(self.config),
            "search_space": to_mapping(self.net_space),
            "classes": list(self.source.classes),
            "normalisation": self.normalisation,
            "input_size": list(self.recipe.input_size),
            "recipe": self.recipe.to_dict(),
            "init": self.init,
            "best": self.state.best,
            "model": self.net.state_dict(),
        }

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"supernet_config": to_mapping(self.config), "arch": self.arch.to_dict(), "init": self.init,
                "new_heads": self.new_heads}  # fmt: skip

    def check_checkpoint(self, ckpt: dict[str, Any]) -> None:
        path = self.checkpoint_path
        if ckpt["arch"] != self.arch.to_dict():
            raise AutoNADError(f"{path}: retrains another arch ({Arch.from_dict(ckpt['arch']).hash})")
        if not same_config(ckpt["supernet_config"], self.config):
            raise AutoNADError(f"{path}: retrains a subnet of another supernet definition")
        if ckpt["init"] != self.init:
            raise AutoNADError(f"{path}: was started with --init {ckpt['init']}, not {self.init}")

    def restore_extra(self, ckpt: dict[str, Any]) -> None:
        self.new_heads = list(ckpt["new_heads"])

    def run_info(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "arch_hash": self.arch.hash, "supernet": to_mapping(self.config),
                "init": self.init, "new_heads": self.new_heads}  # fmt: skip


@dataclass
class TrainedSubnet:
    """A retrained subnet (`best.pt`) loaded for use: the network and what it needs to run."""

    net: SegmentationNet
    arch: Arch
    config: SupernetConfig
    classes: list[str]
    normalisation: dict[str, list[float]]
    input_size: tuple[int, int]
    recipe: Recipe
    init: str
    best: dict[str, Any]

    def export_info(self) -> dict[str, Any]:
        """What an exported model of this subnet records of its training (model.json, the files' metadata)."""
        return {"classes": self.classes, "normalisation": self.normalisation, "input_size": list(self.input_size),
                **self.recipe.transform.scale_info(), "recipe": self.recipe.name, "init": self.init,
                "best_epoch": self.best["epoch"], "selected_by": self.best["metric"], "val": self.best["val"],
                "supernet_config": to_mapping(self.config)}  # fmt: skip


def load_trained_subnet(path: str | Path) -> TrainedSubnet:
    """Rebuild a retrained subnet from `best.pt`, in eval mode; problems are one line."""
    path = Path(path)
    ckpt = load_checkpoint(path, SUBNET_FORMAT)
    try:
        arch = Arch.from_dict(ckpt["arch"], f"{path}: arch")
        config = saved_config(ckpt["supernet_config"], f"{path}: supernet_config")
        recipe = from_mapping(Recipe, ckpt["recipe"], f"{path}: recipe")
        classes = [str(c) for c in ckpt["classes"]]
        norm = {k: list(ckpt["normalisation"][k]) for k in ("mean", "std")}
        size = (int(ckpt["input_size"][0]), int(ckpt["input_size"][1]))
        state, init, best = ckpt["model"], str(ckpt["init"]), dict(ckpt["best"])
        space = SearchSpace.from_dict(ckpt["search_space"], f"{path}: search_space") if "search_space" in ckpt else None
    except KeyError as e:
        raise AutoNADError(f"{path}: incomplete retrained-subnet file (no {e})") from None
    net = build_subnet(config, len(classes), arch, space)  # the space it was trained in (older files: the file's)
    check_weights(state, net, f"{path}: its weights do not fit subnet {arch.hash}")
    net.load_state_dict(state)
    return TrainedSubnet(net.eval(), arch, config, classes, norm, size, recipe, init, best)
