"""Using an exported model: evaluation on a dataset split and prediction on image files.

Images go through the same transform pipeline as training (`autonad.data.Transform`, eval mode:
resized to the model's input size, or with a training scale resampled by it and run whole, padded
to the network stride; normalised with its stored mean/std), so an exported model sees exactly what
the supernet saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from autonad.data import SegmentationDataset, SegSource, Transform, TransformConfig, eval_loader
from autonad.errors import AutoNADError
from autonad.export import load_exported
from autonad.metrics import DEFAULT_TAU, MetricsReport, SegMetrics, parse_target
from autonad.ui import progress


@dataclass
class ExportedModel:
    run: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    meta: dict[str, Any]
    path: Path

    @staticmethod
    def load(path: str | Path, device: torch.device | str = "cpu") -> ExportedModel:
        """The model at `path`, computing on `device` (it takes and gives CPU tensors)."""
        run, meta = load_exported(path, device)
        missing = [k for k in ("classes", "normalisation", "input_size") if k not in meta]
        if missing:
            raise AutoNADError(f"{path}: model metadata lacks '{missing[0]}' (export it with `autonad export`)")
        return ExportedModel(run, meta, Path(path))

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def decision(self) -> dict[str, Any]:
        """How a sample is called defective: phi >= tau (calibrated on validation when the model
        was retrained with --calibrate; else any predicted defect pixel)."""
        return dict(self.meta.get("decision") or {"phi": "pixels", "tau": DEFAULT_TAU["pixels"]})

    @cached_property
    def transform(self) -> Transform:
        norm = self.meta["normalisation"]
        config = TransformConfig(size=tuple(self.meta["input_size"]), scale=self.meta.get("scale"),
                                 pad_to=int(self.meta.get("pad_to", 32)), mean=tuple(norm["mean"]),
                                 std=tuple(norm["std"])).inference()  # fmt: skip
        return Transform(config, train=False)

    def check_classes(self, source: SegSource) -> None:
        if list(source.classes) != self.classes:
            raise AutoNADError(
                f"{source.name} has classes {list(source.classes)}, model {self.path.name} predicts {self.classes}; "
                "retrain the arch on this dataset first (autonad retrain)"
            )

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.run(images)


def evaluate_model(
    model: ExportedModel,
    source: SegSource,
    split: str,
    batch: int = 8,
    tau: float | None = None,
    phi: str | None = None,
) -> MetricsReport:
    """Every SPEC section 8 metric of the model on a split, at the model's input size; the sample
    decision is the model's own (calibrated) one unless `phi`/`tau` say otherwise."""
    decision = model.decision
    phi = phi or decision["phi"]
    if tau is None and phi == decision["phi"]:
        tau = decision["tau"]
    return accumulate_model(model, source, split, batch, phi).compute(tau)


def accumulate_model(model: ExportedModel, source: SegSource, split: str, batch: int, phi: str) -> SegMetrics:
    """The metrics accumulator of the model over a split (for a report, or to calibrate tau)."""
    model.check_classes(source)
    if not source.splits.get(split):
        raise AutoNADError(f"{source.name}: split '{split}' is empty or does not exist")
    data = SegmentationDataset(source, split, model.transform)
    metrics = SegMetrics(len(model.classes), phi=phi, class_names=model.classes)
    loader = eval_loader(data, batch)
    with progress() as bar:
        for images, masks in bar.track(loader, description=f"evaluating on {source.name} {split}"):
            out = model(images)
            metrics.update(out["seg"].float(), masks, out.get("cap"))
    return metrics


def calibrate_decision(model: ExportedModel, source: SegSource, target: str, split: str = "val") -> dict[str, Any]:
    """The sample-level decision (phi = max defect probability, tau) meeting `target` on `split`;
    stored in the model's metadata, it is what `evaluate` and `predict` then use."""
    target = str(parse_target(target))
    tau = accumulate_model(model, source, split, 8, "max_prob").calibrate(target)
    return {"phi": "max_prob", "tau": tau, "target": target, "calibrated_on": f"{source.name} {split}"}


@dataclass
class Prediction:
    path: Path
    mask: np.ndarray  # H x W class ids at the image's own size
    score: float  # max defect probability over pixels
    defect_pixels: int  # predicted defect pixels at the image's own size
    defective: bool  # the sample decision: phi >= tau
    cap: float | None  # CaP defect-presence probability, when the model has the head


def predict_image(model: ExportedModel, path: Path, image: np.ndarray, decision: dict[str, Any]) -> Prediction:
    """Segment one image of any size (resized to the model's input, or run whole at its training
    scale; logits, less any padding, upsampled back) and decide whether it is defective:
    phi ("max_prob" or "pixels") >= tau."""
    h, w = image.shape[:2]
    x, _ = model.transform(image, np.zeros((h, w), dtype=np.int64))
    out = model(x[None])
    sh, sw = model.transform.config.eval_size(h, w)
    seg = out["seg"].float()[..., :sh, :sw]
    logits = F.interpolate(seg, size=(h, w), mode="bilinear", align_corners=False)[0]
    probs = logits.softmax(0)
    mask = probs.argmax(0).numpy().astype(np.uint8)
    score, pixels = float((1 - probs[0]).max()), int((mask > 0).sum())
    phi = score if decision["phi"] == "max_prob" else pixels
    cap = float(torch.sigmoid(out["cap"][0])) if "cap" in out else None
    return Prediction(path, mask, score, pixels, bool(phi >= decision["tau"]), cap)


def report_rows(report: MetricsReport) -> list[tuple[str, float | None]]:
    """(name, value) of the headline metrics, in the order users read them."""
    rows = [("mIoU", report.miou), ("mIoU (defects)", report.miou_fg), ("mF1", report.mf1),
            ("Sample_mIoU", report.sample_miou), ("Seg_Accuracy", report.seg_accuracy),
            ("Seg_Recall", report.seg_recall), ("Seg_Precision", report.seg_precision)]  # fmt: skip
    if report.cap is not None:
        cap = report.cap.to_dict("cap")
        rows += [("CaP accuracy", cap.get("cap_accuracy")), ("CaP recall", cap.get("cap_recall"))]
    return rows
