"""Using an exported model: evaluation on a dataset split and prediction on image files.

Images go through the same transform pipeline as training (`autonad.data.Transform`, eval mode:
resized to the model's input size, or with a training scale resampled by it and run whole, padded
to the network stride; normalised with its stored mean/std), so an exported model sees exactly what
the supernet saw.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from autonad.data import SegmentationDataset, SegSource, Transform, TransformConfig, eval_loader
from autonad.decision import Decision, calibrate, calibration_curve
from autonad.errors import AutoNADError
from autonad.export import load_exported, output_names
from autonad.instances import Instance, find_instances
from autonad.metrics import MetricsReport, SegMetrics, decode_labels, pixel_cut_tensor
from autonad.ui import console, progress


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
    def decision(self) -> Decision:
        """How a sample is called defective: the stored rule and thresholds (calibrated on validation
        when the model was retrained with --calibrate; else any predicted defect pixel)."""
        return Decision.from_dict(self.meta.get("decision") or {}, f"{self.path}: decision")

    @property
    def has_cap(self) -> bool:
        """Whether the model gives CaP's presence output (stage 1)."""
        return "cap" in output_names(self.meta)

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
    model: ExportedModel, source: SegSource, split: str, batch: int = 8, decision: Decision | None = None
) -> MetricsReport:
    """Every SPEC section 8 metric of the model on a split, at the model's input size; the sample
    decision is the model's own (calibrated) one unless `decision` is given."""
    decision = decision or model.decision
    metrics = accumulate_model(model, source, split, batch, decision)
    return compute_report(metrics, decision)


def compute_report(metrics: SegMetrics, decision: Decision) -> MetricsReport:
    classes = list(metrics.class_names)
    return metrics.compute(decision.tau, decision.cap_threshold, decision.rule, decision.class_taus(classes),
                           decision.class_cuts(classes))  # fmt: skip


def accumulate_model(
    model: ExportedModel, source: SegSource, split: str, batch: int, decision: Decision, pixel_histogram: bool = False
) -> SegMetrics:
    """The metrics accumulator of the model over a split with `decision`'s phi, mask thresholds and QC
    rule (for a report, or to calibrate a decision, `pixel_histogram` for its pixel thresholds); with
    a QC rule it counts defect instances too, their areas in each image's own pixels."""
    model.check_classes(source)
    check_decision(model, decision)
    if not source.splits.get(split):
        raise AutoNADError(f"{source.name}: split '{split}' is empty or does not exist")
    qc = decision.qc
    data = SegmentationDataset(source, split, model.transform)
    metrics = SegMetrics(len(model.classes), phi=decision.phi, class_names=model.classes, qc=qc,
                         pixel_thresholds=decision.pixel_cuts(model.classes),
                         pixel_histogram=pixel_histogram)  # fmt: skip
    loader = eval_loader(data, batch)
    split_ids = source.splits[split]
    with progress() as bar:  # the loader batches images of one size together: each batch's ids from its sampler
        batches = zip(loader, loader.batch_sampler)
        for (images, masks), positions in bar.track(batches, total=len(loader), description=f"evaluating on "
                                                    f"{source.name} {split}"):  # fmt: skip
            out = model(images)
            ids = [split_ids[p] for p in positions]
            scale = [_area_scale(model, source, i) for i in ids] if qc is not None else None
            metrics.update(out["seg"].float(), masks, out.get("cap"), scale, out.get("cls"), ids)
    return metrics


def _area_scale(model: ExportedModel, source: SegSource, sample_id: str) -> float:
    """The image's own pixels per pixel of the map the model gives it (before padding)."""
    h, w = source.image_size(sample_id)
    return (h * w) / math.prod(model.transform.config.eval_size(h, w))


def check_decision(model: ExportedModel, decision: Decision) -> None:
    """One line where `decision` asks for an output or a class the model lacks."""
    decision.check(model.has_cap, str(model.path))
    decision.check_classes(model.classes, str(model.path))
    if decision.qc is not None:
        decision.qc.check(model.classes, str(model.path))


def calibrate_decision(
    model: ExportedModel, source: SegSource, target: str, rule: str = "seg", split: str = "val",
    curve: Path | None = None, per_class: bool = False,
) -> Decision:  # fmt: skip
    """The sample-level decision of `rule` (phi = max defect probability) meeting `target` on `split`
    (with its validation curve drawn to `curve`); `per_class`: with each defect class's own taus and
    mask pixel threshold (`autonad.decision`). Stored in the model's metadata, it is what `evaluate`
    and `predict` then use."""
    Decision(rule).check(model.has_cap, str(model.path))
    metrics = accumulate_model(model, source, split, 8, Decision(phi="max_prob"), pixel_histogram=per_class)
    scores = metrics.sample_scores()
    decision = calibrate(scores, rule, "max_prob", target, f"{source.name} {split}", per_class)
    if per_class and rule != "cap" and not decision.class_tau:
        console.print(f"per-class taus miss {target} for whole parts on {source.name} {split}: one tau decides")
    seen = scores.class_label.any(axis=0) if decision.class_tau else ()
    unseen = [c for c, has in zip(scores.classes, seen) if not has]
    if unseen:
        console.print(f"no {split} image of {source.name} has {', '.join(unseen)}: the lowest calibrated tau stands in")
    if per_class:
        fitted = zip(model.classes[1:], metrics.pixel_thresholds_fit())
        decision = dataclasses.replace(decision, pixel_thresholds={c: t for c, t in fitted if t is not None})
    if curve is not None:
        calibration_curve(scores, decision, curve)
    return decision


@dataclass
class Prediction:
    path: Path
    mask: np.ndarray  # H x W class ids at the image's own size
    score: float  # max defect probability over pixels
    defect_pixels: int  # predicted defect pixels at the image's own size
    defective: bool  # the sample decision: phi >= tau
    cap: float | None  # CaP defect-presence probability, when the model has the head
    instances: list[Instance] = dataclasses.field(default_factory=list)  # at least the QC min_area, largest first
    classes: dict[str, float] | None = None  # CaP class stage: p_c of each defect class it calls present


def predict_image(
    model: ExportedModel, path: Path, image: np.ndarray, decision: Decision, pixel_size: float | None = None
) -> Prediction:
    """Segment one image of any size (resized to the model's input, or run whole at its training
    scale; logits, less any padding, upsampled back), list its defect instances (areas in mm^2 too
    with `pixel_size`, mm per pixel) and decide whether it is defective by the decision's rule and QC
    (the gated rule also empties the mask where CaP calls the image clean)."""
    h, w = image.shape[:2]
    x, _ = model.transform(image, np.zeros((h, w), dtype=np.int64))
    out = model(x[None])
    sh, sw = model.transform.config.eval_size(h, w)
    seg = out["seg"].float()[..., :sh, :sw]
    logits = F.interpolate(seg, size=(h, w), mode="bilinear", align_corners=False)[0]
    probs = logits.softmax(0)
    mask = decode_labels(probs[None], pixel_cut_tensor(decision.pixel_cuts(model.classes)))[0].numpy().astype(np.uint8)
    cap = float(torch.sigmoid(out["cap"][0])) if "cap" in out else None
    if not decision.keeps_mask(cap):
        mask, probs = np.zeros_like(mask), torch.zeros_like(probs)
        probs[0] = 1.0
    score, pixels = float((1 - probs[0]).max()), int((mask > 0).sum())
    phi = score if decision.phi == "max_prob" else pixels
    per_class = [float(probs[c].max()) if decision.phi == "max_prob" else int((mask == c).sum())
                 for c in range(1, len(model.classes))]  # fmt: skip
    qc = decision.qc
    found = find_instances(mask, model.classes, probs.numpy(), pixel_size, qc.min_area if qc else 0)
    fails = None if qc is None else qc.class_fails([(i.class_name, i.area) for i in found], model.classes)[None]
    defective = bool(decision.decide(np.array([phi]), None if cap is None else np.array([cap]), fails,
                                     np.array([per_class]), model.classes)[0])  # fmt: skip
    return Prediction(path, mask, score, pixels, defective, cap, found, _stage_classes(model, out, decision))


def _stage_classes(model: ExportedModel, out: dict[str, torch.Tensor], decision: Decision) -> dict[str, float] | None:
    """The defect classes CaP's class stage calls present in the image (p_c over its threshold)."""
    if "cls" not in out:
        return None
    probs = torch.sigmoid(out["cls"][0].float()).numpy()
    cuts = decision.class_cuts(model.classes)
    cuts = np.full(len(probs), 0.5) if cuts is None else cuts
    return {c: round(float(p), 4) for c, p, t in zip(model.classes[1:], probs, cuts) if p >= t}


def report_rows(report: MetricsReport) -> list[tuple[str, float | None]]:
    """(name, value) of the headline metrics, in the order users read them."""
    rows = [("mIoU", report.miou), ("mIoU (defects)", report.miou_fg), ("mF1", report.mf1),
            ("Sample_mIoU", report.sample_miou), ("Seg_Accuracy", report.seg_accuracy),
            ("Seg_Recall", report.seg_recall), ("Seg_Precision", report.seg_precision)]  # fmt: skip
    if report.cap is not None:
        cap = report.cap.to_dict("cap")
        rows += [("CaP accuracy", cap.get("cap_accuracy")), ("CaP recall", cap.get("cap_recall"))]
    decided_apart = report.rule != "seg" or report.instances is not None or report.decided != report.sample.counts
    if report.decided is not None and decided_apart:  # a rule, QC or per-class taus decide, not phi >= tau
        rule, decided = report.rule, report.decided
        rows += [(f"{rule} recall", decided.recall), (f"{rule} precision", decided.precision)]
    if report.instances is not None:
        found = report.instances
        rows += [("instance recall", found["recall"]), ("instance precision", found["precision"])]
    return rows
