"""Training recipes (`recipes/*.yaml`): input size, augmentation, supernet training (`train`),
search budget (`search`) and retraining of a searched subnet (`retrain`).

One recipe per dataset, with the paper's GPU settings where it gives them (supernet: AdamW 5e-4,
cosine; 800 epochs NEU, 3000 MT, 2000 MSD; retraining: Adam 1e-4, poly, 500 epochs) and a `-cpu`
variant sized for a 2-core machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from autonad import resources
from autonad.config import from_mapping, load_yaml_mapping, merge_mappings, to_mapping
from autonad.data import TransformConfig
from autonad.errors import AutoNADError


@dataclass(frozen=True)
class TrainingSettings:
    """What every training run (supernet or one subnet) needs: schedule, loss, checkpoints."""

    epochs: int  # the budget unless `steps` or `minutes` is set
    steps: int | None = None  # budget in optimiser steps (epochs follow from the dataset size)
    minutes: float | None = None  # budget in wall-clock minutes of training and validation, turned into steps
    batch_size: int = 8
    defect_share: float | None = None  # at least this share of defective images per batch (None: as they come)
    lr: float = 5e-4
    weight_decay: float = 0.05  # none on norms and biases
    warmup_epochs: float = 1.0
    schedule: Literal["cosine", "poly"] = "cosine"  # decay after the linear warm-up
    poly_power: float = 0.9
    min_lr_ratio: float = 0.01  # the schedule decays to this fraction of lr
    dice_weight: float = 0.0  # segmentation loss = CE + dice_weight * Dice
    class_weights: Literal["none", "sqrt_inv_freq"] = "none"  # CE class weights from train pixel shares
    cap: bool = True  # train the CaP head jointly when the net has one (both stages where it has them)
    cap_weighting: Literal["fixed", "uncertainty"] = "fixed"
    w_seg: float = 0.5
    w_cls: float = 0.5  # stage 1, defect presence
    w_classes: float = 0.5  # stage 2, the defect classes (multi-label CaP heads)
    cap_balance: bool = False  # weight the CaP loss by the train split's negative/positive ratio
    amp: bool = True  # bf16 autocast on a GPU
    # bf16 autocast on a CPU with native bf16 (avx512_bf16/AMX): 1.2-1.7x faster steps measured, but the
    # Table I supernet diverged to NaN within 110 steps under it (thin-defect data), so it is opt-in
    cpu_bf16: bool = False
    channels_last: bool = True  # channels-last image batches (faster convolutions on CPU)
    grad_clip: float | None = 5.0
    val_every: int = 1  # epochs between validations
    val_images: int | None = None  # at most this many validation images (None: all)
    checkpoint_minutes: float = 10.0  # besides every epoch
    checkpoint_steps: int = 0  # also every N steps (0: off)
    workers: int = 0  # DataLoader worker processes
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise AutoNADError("epochs and batch_size must be at least 1")
        if self.lr <= 0:
            raise AutoNADError(f"lr: must be positive, got {self.lr}")
        if self.val_every < 1:
            raise AutoNADError("val_every: must be at least 1")
        if self.steps is not None and self.steps < 1:
            raise AutoNADError(f"steps: must be at least 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise AutoNADError(f"minutes: must be positive, got {self.minutes}")
        if self.defect_share is not None and not 0 <= self.defect_share <= 1:
            raise AutoNADError(f"defect_share: must be in [0, 1], got {self.defect_share}")
        if self.steps is not None and self.minutes is not None:
            raise AutoNADError("give a budget as steps or as minutes, not both")

    @property
    def budgeted(self) -> bool:
        """Whether the budget is steps or minutes (not epochs)."""
        return self.steps is not None or self.minutes is not None


@dataclass(frozen=True)
class SupernetTraining(TrainingSettings):
    sampler: Literal["uniform", "sandwich"] = "uniform"  # paper: uniform
    sandwich_random: int = 2  # random subnets per sandwich step (besides largest and smallest)
    distill_weight: float = 1.0  # sandwich: weight of in-place distillation from the largest
    latency_every: int = 25  # steps between latency records of the sampled subnet (0: off)


@dataclass(frozen=True)
class SubnetTraining(TrainingSettings):
    """Retraining one searched subnet as a standalone model (paper V-B: Adam 1e-4, poly, 500 epochs, CE)."""

    epochs: int = 500
    lr: float = 1e-4
    weight_decay: float = 0.01
    schedule: Literal["cosine", "poly"] = "poly"
    select: Literal["miou", "miou_fg", "mf1", "sample_miou", "seg_recall"] = "miou"  # best-checkpoint metric
    calibrate: str | None = None  # tau target on validation, e.g. "recall>=0.95" (None: keep the default tau)
    rule: Literal["seg", "cap", "gated", "agree", "any"] = "seg"  # the decision rule calibrated (autonad.metrics.RULES)
    per_class: bool = False  # calibrate each defect class's taus and mask pixel threshold too (autonad.decision)


@dataclass(frozen=True)
class SearchBudget:
    """The evolution's size for this recipe (paper: population 100, 50 generations, top-10)."""

    population: int = 100
    generations: int = 50
    parents: int = 10
    val_images: int | None = None  # validation images per candidate (None: all)
    # then fine-tune the best arch from its inherited weights (the `retrain` settings) for this budget
    # before it is exported; neither: export the inherited weights as they are (the paper's search)
    finetune_minutes: float | None = None
    finetune_steps: int | None = None

    def __post_init__(self):
        if min(self.population, self.generations, self.parents) < 1:
            raise AutoNADError("search: population, generations and parents must be at least 1")
        if self.finetune_minutes is not None and self.finetune_steps is not None:
            raise AutoNADError("search: give the fine-tuning budget once: finetune_minutes or finetune_steps")
        if (self.finetune_minutes is not None and self.finetune_minutes <= 0) or (
            self.finetune_steps is not None and self.finetune_steps < 1
        ):
            raise AutoNADError("search: finetune_minutes and finetune_steps must be positive (leave both out: none)")

    @property
    def finetunes(self) -> bool:
        return self.finetune_minutes is not None or self.finetune_steps is not None

    @property
    def finetune_tag(self) -> str:
        """The fine-tuning budget in a folder name: `10min`, `s300`."""
        return f"s{self.finetune_steps}" if self.finetune_steps is not None else f"{self.finetune_minutes:g}min"


@dataclass(frozen=True)
class Recipe:
    name: str
    train: SupernetTraining
    retrain: SubnetTraining = SubnetTraining()
    transform: TransformConfig = TransformConfig()
    search: SearchBudget = SearchBudget()
    normalise: Literal["dataset", "config"] = "dataset"  # dataset: mean/std of the train split
    dataset: str = "synthetic"  # the dataset it was written for
    supernet: str = "autonad"  # default supernet definition
    description: str = ""

    @staticmethod
    def load(name_or_path: str | Path) -> Recipe:
        path = resources.resolve("recipes", name_or_path)
        return from_mapping(Recipe, recipe_mapping(path), str(path))

    def to_dict(self) -> dict:
        return to_mapping(self)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.transform.size)

    def with_budget(self, stage: str, steps: int | None = None, minutes: float | None = None) -> Recipe:
        """This recipe with the budget of `stage` ("train" or "retrain") set to steps or minutes; the
        name says so, so a run with another budget gets its own run folder."""
        if steps is None and minutes is None:
            return self
        settings = dataclasses.replace(getattr(self, stage), steps=steps, minutes=minutes)
        tag = f"s{steps}" if steps is not None else f"{minutes:g}min"
        return dataclasses.replace(self, **{stage: settings}, name=f"{self.name}+{stage}-{tag}")

    def finetune_recipe(self) -> Recipe:
        """The recipe a search fine-tunes its best arch with: `retrain` settings, the search's fine-tuning budget."""
        budget = self.search
        if not budget.finetunes:
            raise AutoNADError(f"recipe '{self.name}' sets no fine-tuning budget (search.finetune_minutes or _steps)")
        settings = dataclasses.replace(self.retrain, steps=budget.finetune_steps, minutes=budget.finetune_minutes)
        return dataclasses.replace(self, retrain=settings, name=f"{self.name}+finetune-{budget.finetune_tag}")

    def with_finetune(self, steps: int | None = None, minutes: float | None = None, off: bool = False) -> Recipe:
        """This recipe with the search's fine-tuning budget replaced (`off`: none). The name stays: the
        supernet does not depend on it, and the fine-tuning folder is named by its budget."""
        if steps is None and minutes is None and not off:
            return self
        steps, minutes = (None, None) if off else (steps, minutes)
        return dataclasses.replace(self, search=dataclasses.replace(self.search, finetune_steps=steps,
                                                                    finetune_minutes=minutes))  # fmt: skip

    def with_input(self, size: tuple[int, int] | None = None, scale: float | None = None) -> Recipe:
        """This recipe with another network input (the crop in crop mode) and/or training scale."""
        if size is None and scale is None:
            return self
        changes = {k: v for k, v in (("size", size and tuple(size)), ("scale", scale)) if v is not None}
        tag = "+".join(f"{k}{'x'.join(map(str, v)) if k == 'size' else f'{v:g}'}" for k, v in changes.items())
        return dataclasses.replace(self, transform=dataclasses.replace(self.transform, **changes),
                                   name=f"{self.name}+{tag}")  # fmt: skip


def recipe_mapping(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A recipe file's keys laid over those of its `base:` recipe, recursively (mmsegmentation's
    `_base_`): nested sections merge key by key, and `null` resets an inherited optional key. The
    base's `name` and `description` are not inherited: every recipe names itself."""
    data = load_yaml_mapping(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise AutoNADError(f"{path}: base: expected a recipe name or a path to one, got {base!r}")
    chain = (*chain, path.resolve())
    base_path = _base_path(path, base)
    if base_path.resolve() in chain:
        raise AutoNADError(f"{path}: base: '{base}' inherits from itself ({' -> '.join(p.stem for p in chain)})")
    inherited = recipe_mapping(base_path, chain)
    for own in ("name", "description"):
        inherited.pop(own, None)
    return merge_mappings(inherited, data)


def _base_path(recipe: Path, base: str) -> Path:
    """A shipped recipe by name, or a path relative to the recipe that names it."""
    as_path = Path(base).expanduser()
    if as_path.suffix in (".yaml", ".yml") or "/" in base:
        return resources.resolve("recipes", as_path if as_path.is_absolute() else recipe.parent / as_path)
    sibling = recipe.parent / f"{base}.yaml"
    return sibling if sibling.is_file() else resources.resolve("recipes", base)


def default_recipe(dataset: str) -> str:
    """The shipped recipe for a dataset name: `<name>-cpu` without a GPU, `demo` for synthetic."""
    kind = dataset.partition(":")[0]
    if kind == "synthetic":
        return "demo"
    base = kind if kind in resources.list_shipped("recipes") else "default"
    cpu = f"{base}-cpu"
    return cpu if not torch.cuda.is_available() and cpu in resources.list_shipped("recipes") else base
