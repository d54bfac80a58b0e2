"""The test evaluation a report shows: every metric (as `autonad evaluate` computes them) and the
images where the model fails, each drawn as image | ground truth | prediction.

Written under `<run>/evaluation/` (`<split>.json` and PNGs) so `autonad report` re-renders a run
without its dataset or its model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autonad.config import write_text_atomic
from autonad.data import SegSource
from autonad.data.preview import overlay
from autonad.data.split import SPLITS
from autonad.export.inference import ExportedModel, evaluate_model, predict_image
from autonad.figures import new_figure, save_figure
from autonad.metrics import MetricsReport
from autonad.ui import progress

EVALUATION_DIR = "evaluation"
FAILURE_KINDS = {
    "lowest_iou": "lowest sample IoU (defective images)",
    "missed": "missed defects (defective, called defect-free)",
    "false_alarm": "false alarms (defect-free, called defective)",
}


@dataclass(frozen=True)
class ImageResult:
    """One image's outcome at its own size: pooled defect IoU (None when neither GT nor prediction has
    a defect pixel), defect pixels in GT and prediction, and the sample decision against the truth."""

    id: str
    iou: float | None
    gt_pixels: int
    pred_pixels: int
    defective: bool
    called_defective: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate_for_report(
    model: ExportedModel,
    source: SegSource,
    run_dir: str | Path,
    split: str = "test",
    report: MetricsReport | None = None,
    per_kind: int = 3,
    decision: dict[str, Any] | None = None,
) -> Path:
    """Evaluate `model` on `split` (or take the given `report` of it), find its failures and write
    `<run_dir>/evaluation/<split>.json` with their pictures; returns the JSON's path. `decision`
    (phi, tau) overrides the model's own, as `evaluate --phi/--tau` do."""
    decision = decision or model.decision
    out = Path(run_dir) / EVALUATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    report = report or evaluate_model(model, source, split)
    results = [_image_result(model, source, i, decision) for i in _track(source.splits[split], split)]
    failures = pick_failures(results, per_kind)
    pictures = {kind: [_draw_failure(model, source, r, decision, out / f"{split}_{kind}_{n}.png")
                       for n, r in enumerate(rs)]
                for kind, rs in failures.items()}  # fmt: skip
    record = {
        "split": split,
        "dataset": source.name,
        "model": str(model.path),
        "decision": decision,
        "metrics": report.to_dict(),
        "images": [r.to_dict() for r in results],
        "failures": {
            kind: [{"id": r.id, "picture": p.name} for r, p in zip(failures[kind], pictures[kind])] for kind in failures
        },  # fmt: skip
    }
    path = out / f"{split}.json"
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path


def pick_failures(results: list[ImageResult], per_kind: int) -> dict[str, list[ImageResult]]:
    """Up to `per_kind` images of each failure kind, worst first."""
    defective = [r for r in results if r.defective]
    return {
        "lowest_iou": sorted(defective, key=lambda r: (r.iou or 0.0, r.id))[:per_kind],
        "missed": sorted((r for r in defective if not r.called_defective), key=lambda r: -r.gt_pixels)[:per_kind],
        "false_alarm": sorted(
            (r for r in results if not r.defective and r.called_defective), key=lambda r: -r.pred_pixels
        )[:per_kind],  # fmt: skip
    }


def _track(ids: list[str], split: str):
    with progress() as bar:
        yield from bar.track(ids, description=f"report: images of {split}")


def _image_result(model: ExportedModel, source: SegSource, sample_id: str, decision: dict) -> ImageResult:
    image, mask = source.load(sample_id)
    pred = predict_image(model, Path(sample_id), image, decision)
    valid = mask != 255
    gt, hit = (mask > 0) & valid, (pred.mask > 0) & valid
    union = int((gt | hit).sum())
    iou = float((gt & hit).sum()) / union if union else None
    return ImageResult(sample_id, iou, int(gt.sum()), int(hit.sum()), bool(gt.any()), pred.defective)


def _draw_failure(model: ExportedModel, source: SegSource, result: ImageResult, decision: dict, path: Path) -> Path:
    image, mask = source.load(result.id)
    pred = predict_image(model, Path(result.id), image, decision)
    grow = max(0, min(image.shape[:2]) // 160)  # thin defects stay visible in a small picture
    panels = [
        ("image", image),
        ("ground truth", overlay(image, mask, grow)),
        ("prediction", overlay(image, pred.mask, grow)),
    ]
    fig = new_figure((9, 3.2))
    for k, (title, picture) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    iou = "-" if result.iou is None else f"{100 * result.iou:.1f}"
    verdict = "defective" if result.called_defective else "defect-free"
    fig.suptitle(f"{result.id}: IoU {iou}, called {verdict}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def load_evaluation(run_dir: str | Path, split: str | None = None) -> dict[str, Any] | None:
    """The run's evaluation of `split` (default: of test, else val, else train), or None."""
    for name in (split,) if split else SPLITS[::-1]:
        path = Path(run_dir) / EVALUATION_DIR / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
    return None


def failure_rates(images: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of each outcome over the evaluated images."""
    arr = {k: np.array([im[k] for im in images], dtype=bool) for k in ("defective", "called_defective")}
    d, c = arr["defective"], arr["called_defective"]
    return {"images": len(images), "defective": int(d.sum()), "missed": int((d & ~c).sum()),
            "false_alarms": int((~d & c).sum())}  # fmt: skip
