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
from autonad.decision import Decision
from autonad.errors import AutoNADError
from autonad.export.inference import ExportedModel, accumulate_model, compute_report, predict_image, report_rows
from autonad.figures import new_figure, save_figure
from autonad.metrics import MetricsReport

EVALUATION_DIR = "evaluation"
RECORD_KEYS = ("split", "dataset", "model", "decision", "rows", "metrics", "images", "failures")
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
    decision: Decision | None = None,
    per_kind: int = 3,
    batch: int = 8,
) -> MetricsReport:
    """Evaluate `model` on `split` with its decision (or `decision`, as `evaluate --rule/--phi/--tau`
    give it) and write `<run_dir>/evaluation/<split>.json`: every metric, each image's outcome (from
    the same pass, so the counts agree with the decision's recall and precision) and pictures of the
    worst. Returns the metrics."""
    decision = decision or model.decision
    metrics = accumulate_model(model, source, split, batch, decision)
    report = compute_report(metrics, decision)
    results = image_results(metrics.sample_rows(), metrics.sample_ids, decision, model.classes)
    failures = pick_failures(results, per_kind)
    out = Path(run_dir) / EVALUATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    pictures = {kind: [_draw_failure(model, source, r, decision, out / f"{split}_{kind}_{n}.png")
                       for n, r in enumerate(rs)] for kind, rs in failures.items()}  # fmt: skip
    record = {
        "split": split,
        "dataset": source.name,
        "model": str(model.path),
        "decision": decision.to_dict(),
        "rows": report_rows(report),
        "metrics": report.to_dict(),
        "images": [r.to_dict() for r in results],
        "failures": {
            kind: [{"id": r.id, "picture": p.name} for r, p in zip(failures[kind], pictures[kind])] for kind in failures
        },  # fmt: skip
    }
    write_text_atomic(out / f"{split}.json", json.dumps(record, indent=1) + "\n")
    return report


def image_results(
    rows: dict[str, np.ndarray], ids: list[str], decision: Decision, classes: list[str]
) -> list[ImageResult]:
    """Each evaluated image's outcome from the accumulator's per-sample rows (at the model's scale) and
    names (`SegMetrics.sample_ids`, in update order); the gated rule empties the prediction of an image
    CaP calls clean."""
    cap = rows["cap"] if decision.uses_cap else None
    called = decision.decide(rows["phi"], cap, rows["qc"], rows["phi_class"], classes)
    kept = np.ones_like(called) if cap is None else np.array([decision.keeps_mask(c) for c in cap], dtype=bool)
    inter, pred = np.where(kept, rows["inter"], 0), np.where(kept, rows["pred"], 0)
    union = rows["gt"] + pred - inter
    return [ImageResult(ids[int(pos)], float(i) / u if u else None, int(g), int(p), bool(label), bool(c))
            for pos, i, u, g, p, label, c in zip(rows["position"], inter, union, rows["gt"], pred, rows["label"],
                                                  called)]  # fmt: skip


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


def _draw_failure(model: ExportedModel, source: SegSource, result: ImageResult, decision: Decision, path: Path) -> Path:
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
            return _evaluation_record(path)
    return None


def _evaluation_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AutoNADError(f"{path}: not readable JSON ({e.__class__.__name__})") from None
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise AutoNADError(
            f"{path}: incomplete evaluation record (no '{missing[0]}'); rerun `autonad report --evaluate`"
        )
    return record


def failure_rates(images: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of each outcome over the evaluated images."""
    arr = {k: np.array([im[k] for im in images], dtype=bool) for k in ("defective", "called_defective")}
    d, c = arr["defective"], arr["called_defective"]
    return {"images": len(images), "defective": int(d.sum()), "missed": int((d & ~c).sum()),
            "false_alarms": int((~d & c).sum())}  # fmt: skip
