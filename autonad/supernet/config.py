"""Supernet definitions (`supernets/*.yaml`) as typed dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autonad import resources
from autonad.config import from_mapping, load_yaml, to_mapping
from autonad.errors import AutoNADError
from autonad.supernet.sharing import WeightSharing


@dataclass(frozen=True)
class DecoderConfig:
    gn_channels_per_group: int = 8  # GroupNorm channels per group; must divide every decoder width
    dropout: float = 0.1  # before the segmentation classifier

    def __post_init__(self):
        if self.gn_channels_per_group < 1:
            raise AutoNADError("gn_channels_per_group: must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise AutoNADError(f"dropout: {self.dropout} is not in [0, 1)")


@dataclass(frozen=True)
class HeadsConfig:
    cap: bool = True  # whether the supernet has a CaP head (each arch turns it on with heads.cap)
    cap_hidden: int = 128  # CaP MLP width
    multilabel: bool = False  # CaP also predicts one logit per defect class

    def __post_init__(self):
        if self.cap_hidden < 1:
            raise AutoNADError("cap_hidden: must be at least 1")


@dataclass(frozen=True)
class SupernetConfig:
    name: str
    search_space: str  # name of a shipped search space or a path to a YAML file
    weight_sharing: WeightSharing = "cross"
    drop_path: float = 0.1  # stochastic depth of the last block slot (linear from 0 over slots)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    description: str = ""

    def __post_init__(self):
        if not 0.0 <= self.drop_path < 1.0:
            raise AutoNADError(f"drop_path: {self.drop_path} is not in [0, 1)")

    @staticmethod
    def load(name_or_path: str | Path) -> SupernetConfig:
        """A shipped supernet by name (`autonad`, `tiny`, ...) or the user's YAML by path."""
        path = resources.resolve("supernets", name_or_path)
        return from_mapping(SupernetConfig, load_yaml(path), str(path))


def saved_config(data: dict, where: str) -> SupernetConfig:
    """The supernet definition stored in a checkpoint or an exported model. Files written while the
    stem was a supernet setting carry `stem: patch` (the paper's embedding, now the search space's
    default), which is dropped; a conv stem there was never shipped and is refused."""
    data = dict(data)
    stem = data.pop("stem", "patch")
    if stem != "patch":
        raise AutoNADError(f"{where}: has `stem: {stem}`, a supernet setting of an older version; the stem is "
                           "now set in the search space (`stem: conv`, as in autonad-fine)")  # fmt: skip
    return from_mapping(SupernetConfig, data, where)


def same_config(saved: dict, config: SupernetConfig) -> bool:
    """Whether a checkpoint's supernet definition is `config`, defaults filled in first (a checkpoint
    written before a field existed matches a definition that keeps that field's default)."""
    try:
        return to_mapping(saved_config(saved, "checkpoint supernet_config")) == to_mapping(config)
    except AutoNADError:
        return False
