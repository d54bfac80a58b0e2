"""A hand-designed baseline trained like a retrained subnet: a plain U-Net-style CNN.

The results page compares searched subnets with it at the same retraining budget (same recipe
`retrain` section, same data pipeline, loss and schedule), so it is trained by the same loop
(`StandaloneTrainer`) and its `best.pt` evaluates with the same code as every exported model.
It starts from scratch: there is no supernet to inherit from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autonad.data import SegSource
from autonad.errors import AutoNADError
from autonad.train.checkpoint import load_checkpoint
from autonad.train.distributed import DistInfo
from autonad.train.loop import check_weights
from autonad.train.recipe import Recipe
from autonad.train.subnet import StandaloneTrainer

UNET_FORMAT = "autonad-unet/1"  # best.pt of a U-Net baseline
UNET_RUN_FORMAT = "autonad-unet-run/1"  # checkpoint.pt: everything to resume
UNET_WIDTHS = (32, 64, 128, 256, 512)  # Ronneberger et al.'s U-Net at half width (~7.8 M parameters)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip


class UNet(nn.Module):
    """Encoder of double 3x3 convs with max-pooling, decoder of bilinear upsampling, skip concat and
    double convs, a 1x1 classifier at full resolution. Returns ``{"seg": logits}`` like every
    AutoNAD network, so training, evaluation and export need nothing special."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = UNET_WIDTHS, in_channels: int = 3):
        super().__init__()
        self.widths = tuple(widths)
        self.down = nn.ModuleList()
        cin = in_channels
        for w in self.widths:
            self.down.append(_double_conv(cin, w))
            cin = w
        self.up = nn.ModuleList(_double_conv(hi + lo, lo) for hi, lo in zip(self.widths[:0:-1], self.widths[-2::-1]))
        self.classifier = nn.Conv2d(self.widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return {"seg": self.classifier(x)}


class UNetTrainer(StandaloneTrainer):
    checkpoint_format = UNET_RUN_FORMAT

    def __init__(self, recipe: Recipe, source: SegSource, run_dir: Path, widths: tuple[int, ...] = UNET_WIDTHS,
                 dist: DistInfo | None = None, max_epochs: int | None = None):  # fmt: skip
        super().__init__(recipe, recipe.retrain, source, run_dir, dist, max_epochs)
        self.widths = tuple(widths)

    def title(self) -> str:
        return f"U-Net baseline on {self.source.name}"

    def model_label(self) -> str:
        return f"U-Net {list(self.widths)}"

    def build_model(self) -> nn.Module:
        return UNet(self.source.num_classes, self.widths).to(self.device)

    def best_payload(self) -> dict[str, Any]:
        return {"format": UNET_FORMAT, "widths": list(self.widths), "classes": list(self.source.classes),
                "normalisation": self.normalisation, "input_size": list(self.recipe.input_size),
                **self.recipe.transform.scale_info(),
                "recipe": self.recipe.name, "best": self.state.best, "model": self.net.state_dict()}  # fmt: skip

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"widths": list(self.widths)}

    def check_checkpoint(self, ckpt: dict[str, Any]) -> None:
        if list(ckpt["widths"]) != list(self.widths):
            raise AutoNADError(f"{self.checkpoint_path}: trains a U-Net of widths {ckpt['widths']}, not {self.widths}")

    def run_info(self) -> dict[str, Any]:
        return {"model": "unet", "widths": list(self.widths)}


@dataclass
class TrainedUNet:
    net: UNet
    meta: dict[str, Any]  # classes, normalisation, input_size, recipe, best


def load_trained_unet(path: str | Path) -> TrainedUNet:
    """Rebuild a trained U-Net baseline from its `best.pt`, in eval mode; problems are one line."""
    ckpt = load_checkpoint(Path(path), UNET_FORMAT)
    try:
        net = UNet(len(ckpt["classes"]), tuple(ckpt["widths"]))
        meta = {k: ckpt[k] for k in ("classes", "normalisation", "input_size", "recipe", "best")}
        meta.update({k: ckpt[k] for k in ("scale", "pad_to") if k in ckpt})  # files before crop mode: resize
        state = ckpt["model"]
    except KeyError as e:
        raise AutoNADError(f"{path}: incomplete U-Net file (no {e})") from None
    check_weights(state, net, f"{path}: its weights do not fit a U-Net of widths {ckpt['widths']}")
    net.load_state_dict(state)
    return TrainedUNet(net.eval(), meta)
