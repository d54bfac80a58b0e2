"""Segmentation metrics: pixel level, sample level (paper 000) and the CaP head (SPEC section 8).

Inputs of `SegMetrics.update` (decided once, here):

- `preds`: either a float tensor `[B, C, H, W]` of raw segmentation *logits* (softmax is applied
  here; to pass probabilities `p`, pass `p.log()`, since `softmax(log p) = p`), or an integer
  tensor `[B, H, W]` of predicted class ids (the labels-only path; needs `phi="pixels"`).
  Predicted class = argmax over C (ties go to the lower index, i.e. to background); with
  per-class pixel thresholds (`decode_labels`) a pixel is its most probable defect class c where
  p_c >= t_c (classes without a threshold: where p_c beats background, i.e. the argmax).
- `target`: integer tensor `[B, H, W]` of class ids; class 0 is background, every other class is
  a defect class. Pixels equal to `ignore_index` count nowhere: not in the confusion matrix, not
  in any per-sample count, not in phi. A sample whose pixels are all ignored is not a sample.
- `cap_logits`: optional float tensor `[B]` (or `[B, 1]`) of raw CaP defect-presence logits
  (sigmoid is applied here).

Only a C x C confusion matrix and a few scalars per sample are kept, so any number of batches can
be accumulated; `merge` combines accumulators (parallel workers, DDP ranks: the object pickles).

Definitions (None = undefined, e.g. a mean over an empty set; never NaN):

- Pixel level, from the dataset confusion matrix: IoU_c = TP/(TP+FP+FN), F1_c = 2TP/(2TP+FP+FN).
  A class absent from both GT and prediction has no score and is left out of every mean.
  `miou`/`mf1` average over present classes including background, `miou_fg`/`mf1_fg` over present
  defect classes only. `pooled_iou` merges all defect classes into one "defect" class and is the
  IoU of that class against background (paper 000 eq. 2, its "mIoU_pooled").
- Sample level (paper 000 section 3.1-3.2), per sample i with defect = any class > 0:
  IoU_i = TP_i/(TP_i+FP_i+FN_i) of the pooled defect class on the *predicted mask itself* (eq. 1);
  `sample_miou` = mean IoU_i over the "relevant" samples, those whose union of GT and predicted
  defect pixels is non-empty (eq. 4, M_eff of them). A relevant sample that is completely missed
  scores 0. The paper does not zero predictions of samples the phi/tau decision calls defect-free,
  so neither do we: `sample_miou` does not depend on tau. Pure true negatives (`empty_samples`)
  are reported as their own count, as the paper advises.
  Decision (eq. 5): a sample is predicted defective when phi(S_i) >= tau, with phi = "pixels"
  (number of predicted defect pixels, default tau 1) or "max_prob" (max over pixels of
  1 - p(background), default tau 0.5). GT defective = any GT defect pixel. `seg_accuracy`,
  `seg_recall`, `seg_precision` (and `seg_f1`) come from that sample-level confusion (eqs. 6-7).
  `per_class_sample_iou` applies eq. 4 per defect class (paper: M_eff "inside the current category").
  Per-class sample scores `phi_class` (max p_c over pixels, or the class's predicted pixels) with
  per-class taus make the sample decision "any class c with phi_c >= tau_c" (`seg_decisions`).
- CaP head: `cap` holds accuracy/recall/precision/F1 of sigmoid(cap_logit) >= cap_threshold
  against GT defective. `cap_gated` is our extension (the paper derives its Seg_* from the
  segmentation output only): the same sample metrics recomputed on the *gated output*, where the
  segmentation of every sample CaP calls defect-free is zeroed, i.e. its predicted mask is empty
  and its phi is 0.
- Decisions (`RULES`, stored and calibrated by `autonad.decision`): `decided` is the confusion of the
  rule's decision, where a QC rule on defect instances (`qc`) also gates the segmentation's part;
  `instances` holds instance-level recall/precision, `per_class_sample` / `per_class_cap` each defect
  class's sample recall/precision/F1 from the segmentation and from CaP's class stage.
- `calibrate_tau` picks tau on validation scores for a target such as "recall>=0.95" (best
  precision under it), "precision>=0.9", "f1", "accuracy" or "precision+recall" (paper 004's
  validation metric); `SegMetrics.compute(tau=...)` re-evaluates with another tau, no new pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from autonad.errors import AutoNADError
from autonad.instances import InstanceCounts, QCRule

__all__ = [
    "BinaryCounts",
    "CalibrationTarget",
    "MetricsReport",
    "PHIS",
    "SampleMetrics",
    "SampleScores",
    "SegMetrics",
    "RULES",
    "calibrate_tau",
    "decide",
    "decode_labels",
    "seg_decisions",
    "parse_target",
]

PHIS = ("pixels", "max_prob")
# How a sample is called defective (papers 000/004); `autonad.decision` stores and calibrates them.
RULES = {
    "seg": "segmentation only: phi >= tau",
    "cap": "CaP only: p(defect) >= the CaP threshold",
    "gated": "CaP-gated segmentation: a mask only where CaP says defective, then phi >= tau",
    "agree": "segmentation and CaP agree: both say defective",
    "any": "segmentation or CaP: either says defective",
}
DEFAULT_TAU = {"pixels": 1.0, "max_prob": 0.5}
_ROW_FIELDS = ("phi", "phi_class", "label", "inter", "union", "gt", "cap", "qc")
PIXEL_BINS = 200  # probability bins of the pixel histogram the per-class pixel thresholds are fitted on
BOOTSTRAP_KEYS = ("miou", "mf1", "miou_fg", "sample_miou", "seg_recall", "seg_accuracy")


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def check_threshold(value: Any, what: str = "tau", probability: bool = False) -> float:
    """`value` as a threshold: a finite number >= 0, and at most 1 where it cuts a `probability` (a
    higher one would silently never fire); one line naming `what` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AutoNADError(f"{what}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (probability and value > 1 + 1e-6):  # float32 rounding
        bounds = "within 0..1 (a probability)" if probability else "a finite number >= 0"
        raise AutoNADError(f"{what}: expected {bounds}, got {value!r}")
    return value


def is_probability(phi: str) -> bool:
    """Whether the sample score `phi` (PHIS) is a probability (its thresholds lie in 0..1)."""
    return phi == "max_prob"


# ----------------------------------------------------------------------------- report types


@dataclass(frozen=True)
class BinaryCounts:
    """Confusion of a binary (defective vs defect-free) sample decision."""

    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def from_decisions(cls, pred: np.ndarray, label: np.ndarray) -> BinaryCounts:
        pred, label = pred.astype(bool), label.astype(bool)
        return cls(
            tp=int((pred & label).sum()),
            fp=int((pred & ~label).sum()),
            fn=int((~pred & label).sum()),
            tn=int((~pred & ~label).sum()),
        )

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.total)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def f1(self) -> float | None:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def to_dict(self, prefix: str) -> dict[str, Any]:
        rates = {f"{prefix}_{k}": getattr(self, k) for k in ("accuracy", "recall", "precision", "f1")}
        return {**rates, f"{prefix}_counts": {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}}


@dataclass(frozen=True)
class SampleMetrics:
    """Paper 000 sample-level metrics for one decision rule."""

    sample_miou: float | None
    m_eff: int  # relevant samples: GT or predicted defect pixel present
    counts: BinaryCounts  # sample-level confusion of phi >= tau

    @property
    def empty_samples(self) -> int:
        """Pure true negatives: no GT and no predicted defect pixel (left out of sample_miou)."""
        return self.counts.total - self.m_eff

    @property
    def seg_accuracy(self) -> float | None:
        return self.counts.accuracy

    @property
    def seg_recall(self) -> float | None:
        return self.counts.recall

    @property
    def seg_precision(self) -> float | None:
        return self.counts.precision

    @property
    def seg_f1(self) -> float | None:
        return self.counts.f1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sample_miou": self.sample_miou}
        out.update({f"seg_{k}": getattr(self, f"seg_{k}") for k in ("accuracy", "recall", "precision", "f1")})
        c = self.counts
        out["sample_counts"] = {
            "tp": c.tp,
            "fp": c.fp,
            "fn": c.fn,
            "tn": c.tn,
            "m_eff": self.m_eff,
            "empty": self.empty_samples,
        }
        return out


@dataclass(frozen=True)
class MetricsReport:
    """Everything `SegMetrics.compute` reports; `to_dict()` is JSON-ready (None -> null)."""

    class_names: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: GT class, columns: predicted class
    per_class_iou: dict[str, float | None]
    per_class_f1: dict[str, float | None]
    miou: float | None
    miou_fg: float | None
    mf1: float | None
    mf1_fg: float | None
    pooled_iou: float | None
    per_class_sample_iou: dict[str, float | None]  # defect classes only
    sample: SampleMetrics
    cap: BinaryCounts | None
    cap_gated: SampleMetrics | None
    phi: str
    tau: float
    cap_threshold: float
    num_samples: int
    num_pixels: int
    rule: str = "seg"
    # the decision a line acts on: `rule`, with the segmentation's part counting only samples a QC rule fails
    # (`SegMetrics(qc=...)`); `sample` stays the paper's plain phi >= tau (None: as `sample`)
    decided: BinaryCounts | None = None
    instances: dict[str, Any] | None = None  # instance recall/precision (InstanceCounts.to_dict), with a QC rule
    # per defect class, the sample decision "has class c" (paper 004's per-class recall/precision/F1): from
    # the segmentation (a predicted pixel of c) and, where given, from CaP's class logits (p_c >= 0.5)
    per_class_sample: dict[str, dict[str, float | None]] | None = None
    per_class_cap: dict[str, dict[str, float | None]] | None = None

    @property
    def sample_miou(self) -> float | None:
        return self.sample.sample_miou

    @property
    def seg_accuracy(self) -> float | None:
        return self.sample.seg_accuracy

    @property
    def seg_recall(self) -> float | None:
        return self.sample.seg_recall

    @property
    def seg_precision(self) -> float | None:
        return self.sample.seg_precision

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: getattr(self, k) for k in ("miou", "miou_fg", "mf1", "mf1_fg", "pooled_iou", "phi", "tau")
        }
        out.update(self.sample.to_dict())
        if self.cap is not None:
            out.update(self.cap.to_dict("cap"))
            out["cap_threshold"] = self.cap_threshold
        if self.cap_gated is not None:
            out["cap_gated"] = self.cap_gated.to_dict()
        decided = self.decided if self.decided is not None else self.sample.counts
        rates = {k: getattr(decided, k) for k in ("accuracy", "recall", "precision", "f1")}
        out["decision"] = {"rule": self.rule, **rates, "counts": decided.to_dict("d")["d_counts"]}
        if self.instances is not None:
            out["instances"] = self.instances
        for key in ("per_class_sample", "per_class_cap"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["per_class_iou"] = dict(self.per_class_iou)
        out["per_class_f1"] = dict(self.per_class_f1)
        out["per_class_sample_iou"] = dict(self.per_class_sample_iou)
        out["num_samples"] = self.num_samples
        out["num_pixels"] = self.num_pixels
        out["class_names"] = list(self.class_names)
        out["confusion"] = [list(row) for row in self.confusion]
        return out


@dataclass(frozen=True)
class SampleScores:
    """Per-sample scores kept for calibration: phi, GT defective and CaP p(defect) (if any); per defect
    class (columns in `classes` order) phi_c, GT has the class and CaP's class-stage p_c (if any)."""

    phi: np.ndarray
    label: np.ndarray
    cap_prob: np.ndarray | None
    phi_class: np.ndarray | None = None  # [N, C-1]
    class_label: np.ndarray | None = None  # [N, C-1]
    class_prob: np.ndarray | None = None  # [N, C-1]
    classes: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- pure helpers


def _class_scores(cm: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Per-class IoU and F1 from a confusion matrix; None for classes absent from GT and prediction."""
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    iou = [_ratio(t, t + p + n) for t, p, n in zip(tp, fp, fn)]
    f1 = [_ratio(2 * t, 2 * t + p + n) for t, p, n in zip(tp, fp, fn)]
    return iou, f1


def _pooled_iou(cm: np.ndarray) -> float | None:
    tp, fp, fn = cm[1:, 1:].sum(), cm[0, 1:].sum(), cm[1:, 0].sum()
    return _ratio(tp, tp + fp + fn)


def _sample_metrics(
    phi: np.ndarray, label: np.ndarray, inter: np.ndarray, union: np.ndarray, tau: float
) -> SampleMetrics:
    relevant = union > 0
    ious = inter[relevant] / union[relevant]
    sample_miou = float(ious.mean()) if ious.size else None
    return SampleMetrics(sample_miou, int(relevant.sum()), BinaryCounts.from_decisions(phi >= tau, label))


def _per_class_rates(names: Sequence[str], pred: np.ndarray, gt: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Recall, precision and F1 of each column's sample decision `pred[:, c]` against `gt[:, c]`."""
    out = {}
    for c, name in enumerate(names):
        counts = BinaryCounts.from_decisions(pred[:, c], gt[:, c])
        out[name] = {"recall": counts.recall, "precision": counts.precision, "f1": counts.f1,
                     "samples": int(gt[:, c].sum())}  # fmt: skip
    return out


def _seg_phi(rows: dict[str, np.ndarray], key: str = "phi") -> np.ndarray:
    """phi (or phi_class) where a QC rule lets the segmentation call the sample defective, -1 (never, as
    tau >= 0) elsewhere: the part's phi where an instance of any class fails it, phi_c where one of
    class c does (`rows["qc"]` is per sample and defect class)."""
    qc = rows["qc"].any(1) if key == "phi" else rows["qc"]
    return np.where(qc, rows[key], -1.0)


def seg_decisions(
    phi: np.ndarray, tau: float, phi_class: np.ndarray | None = None, class_tau: np.ndarray | None = None
) -> np.ndarray:
    """The segmentation's sample decisions: phi >= tau, or with per-class taus `[C-1]` any class c
    with phi_c >= tau_c."""
    if class_tau is None:
        return np.asarray(phi) >= tau
    if phi_class is None:
        raise ValueError("per-class taus need per-class sample scores")
    return (np.asarray(phi_class) >= np.asarray(class_tau)[None, :]).any(1)


def pixel_cut_tensor(cuts: Sequence[float | None] | None) -> torch.Tensor | None:
    """Per-defect-class pixel thresholds (None: the argmax) as `decode_labels` takes them (NaN: none)."""
    return None if cuts is None else torch.tensor([math.nan if t is None else float(t) for t in cuts])


def decode_labels(probs: torch.Tensor, thresholds: torch.Tensor | None = None) -> torch.Tensor:
    """Class ids `[B, H, W]` from probabilities `[B, C, H, W]`: the argmax, or with per-defect-class pixel
    thresholds `[C-1]` (NaN: none) the most probable defect class c where p_c >= t_c (p_c > p(bg)
    where c has none), else background."""
    if thresholds is None:
        return probs.argmax(1)
    top, index = probs[:, 1:].max(1)
    t = thresholds.to(probs.device, probs.dtype)[index]
    keep = torch.where(torch.isnan(t), top > probs[:, 0], top >= t)
    return torch.where(keep, index + 1, torch.zeros_like(index))


def _pixel_threshold_fit(hist: np.ndarray, rounds: int = 3) -> list[float | None]:
    """Per defect class c the pixel threshold from `hist[c-1, bin, gt]` (pixels whose most probable
    defect class is c, by the bin of p_c, by GT class) that maximises the mIoU over every class,
    background included: a class fitted for its own IoU alone may take the background with it. A
    pixel of top class c is c exactly when p_c >= t_c, so the confusion matrix of any thresholds
    follows from the histogram; the thresholds are fitted one class at a time, a few rounds. None
    (the argmax) for classes validation has no pixel of."""
    k, bins, _ = hist.shape
    above = hist[:, ::-1].cumsum(1)[:, ::-1]  # [c, bin, gt]: top class c with p_c >= the bin's edge
    total = hist.sum(1)  # [c, gt]
    present = hist.sum((0, 1))[1:] > 0
    cut = np.full(k, bins // 2)  # start near the argmax of a two-class softmax

    def miou(cut: np.ndarray) -> float:
        labelled = above[np.arange(k), np.minimum(cut, bins - 1)] * (cut < bins)[:, None]  # [c, gt]
        cm = np.zeros((k + 1, k + 1))
        cm[:, 1:] = labelled.T
        cm[:, 0] = (total - labelled).sum(0)
        return _mean(_class_scores(cm)[0]) or 0.0

    for _ in range(rounds):
        before = cut.copy()
        for c in np.flatnonzero(present):
            scores = []
            for b in range(bins + 1):  # bins: never
                cut[c] = b
                scores.append(miou(cut))
            scores = np.array(scores)
            top = np.flatnonzero(scores >= scores.max() - 1e-12)
            run = top[: 1 + int(np.argmax(np.diff(top) > 1)) if (np.diff(top) > 1).any() else len(top)]
            cut[c] = int(run[len(run) // 2])  # the middle of the first plateau of the best: away from both edges
        if (cut == before).all():
            break
    return [float(min(b, bins) / bins) if ok else None for b, ok in zip(cut, present)]


def _gated_metrics(rows: dict[str, np.ndarray], tau: float, cap_threshold: float) -> SampleMetrics:
    """Sample metrics of the output after CaP gating: samples CaP calls clean get an empty mask."""
    yes = rows["cap"] >= cap_threshold
    inter = np.where(yes, rows["inter"], 0)
    union = np.where(yes, rows["union"], rows["gt"])
    phi = np.where(yes, rows["phi"], -1.0)  # never defective (tau >= 0)
    return _sample_metrics(phi, rows["label"], inter, union, tau)


def decide(rule: str, seg_yes: np.ndarray, cap_yes: np.ndarray | None) -> np.ndarray:
    """The sample decisions of `rule` (see RULES) from the segmentation's and CaP's own decisions."""
    if rule not in RULES:
        raise AutoNADError(f"unknown decision rule '{rule}' (choose from: {', '.join(RULES)})")
    if rule == "seg":
        return seg_yes
    if cap_yes is None:
        raise AutoNADError(f"decision rule '{rule}' needs a CaP head, and the model has none")
    return {"cap": cap_yes, "gated": seg_yes & cap_yes, "agree": seg_yes & cap_yes, "any": seg_yes | cap_yes}[rule]


# ----------------------------------------------------------------------------- accumulator


class SegMetrics:
    """Accumulates pixel, sample and CaP metrics over batches; see the module docstring."""

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        phi: str = "pixels",
        tau: float | None = None,
        cap_threshold: float = 0.5,
        class_names: Sequence[str] | None = None,
        qc: QCRule | None = None,
        pixel_thresholds: Sequence[float | None] | None = None,
        pixel_histogram: bool = False,
    ) -> None:
        """`qc`: count defect instances (instance recall/precision in the report) and let the
        segmentation call a sample defective only where an instance fails the part by this rule;
        `pixel_thresholds`: per defect class (None: argmax), how logits are decoded (`decode_labels`);
        `pixel_histogram`: keep what `pixel_thresholds_fit` needs (off on the training and search paths)."""
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + defect classes), got {num_classes}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class id (classes 0..{num_classes - 1})")
        if phi not in PHIS:
            raise AutoNADError(f"unknown phi '{phi}' (choose from: {', '.join(PHIS)})")
        names = tuple(class_names) if class_names is not None else self._default_names(num_classes)
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.phi = phi
        self.tau = check_threshold(DEFAULT_TAU[phi] if tau is None else tau, "tau", is_probability(phi))
        self.cap_threshold = check_threshold(cap_threshold, "cap_threshold", probability=True)
        self.class_names = names
        self.qc = qc
        self.pixel_thresholds = None if pixel_thresholds is None else self._thresholds(pixel_thresholds)
        self.pixel_histogram = pixel_histogram
        self.reset()

    def _thresholds(self, values: Sequence[float | None]) -> torch.Tensor:
        if len(values) != self.num_classes - 1:
            raise ValueError(f"{len(values)} pixel thresholds for {self.num_classes - 1} defect classes")
        cuts = [math.nan if v is None else check_threshold(v, "pixel threshold", probability=True) for v in values]
        return torch.tensor(cuts)

    @staticmethod
    def _default_names(num_classes: int) -> tuple[str, ...]:
        return ("background", *(f"class{c}" for c in range(1, num_classes)))

    def reset(self) -> None:
        c = self.num_classes
        self._confusion = torch.zeros(c, c, dtype=torch.int64)
        self._class_iou_sum = np.zeros(c, dtype=np.float64)
        self._class_iou_count = np.zeros(c, dtype=np.int64)
        self._rows: dict[str, list[np.ndarray]] = {k: [] for k in _ROW_FIELDS}
        self._positions: list[np.ndarray] = []  # each kept sample's index among all samples updated
        self._sample_cms: list[np.ndarray] = []  # [B, C, C] per kept sample (bootstrap resampling)
        self._seen = 0
        self._has_cap: bool | None = None
        self._instances = InstanceCounts.zeros(self.num_classes) if self.qc is not None else None
        self._class_probs: list[np.ndarray] = []  # CaP class-stage probabilities [B, C-1] per batch, where given
        # pixels from logits by (most probable defect class, bin of its probability, GT class)
        self._pixel_hist = torch.zeros(c - 1, PIXEL_BINS, c, dtype=torch.int64)
        self.sample_ids: list[str] = []  # every updated sample's name, in update order (`position` indexes it)

    @property
    def num_samples(self) -> int:
        return sum(len(a) for a in self._rows["label"])

    # ------------------------------------------------------------------------- update

    @torch.no_grad()
    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        cap_logits: torch.Tensor | None = None,
        area_scale: Sequence[float] | None = None,
        class_logits: torch.Tensor | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        """Add one batch: logits `[B,C,H,W]` or labels `[B,H,W]`, target `[B,H,W]`, CaP logits `[B]`;
        `area_scale`: per sample, the user's image pixels per map pixel (for QC areas; default 1);
        `class_logits`: CaP's per-class logits `[B, C-1]` (the class stage), for its per-class scores;
        `ids`: the samples' names (`sample_ids`, in update order)."""
        target = self._check_target(target, preds)
        labels, probs = self._split_preds(preds, target)
        cap = self._cap_probs(cap_logits, target.shape[0])  # validates before any state changes
        valid = self._valid(target)
        per_sample = self._per_sample_confusion(labels, target, valid)
        self._confusion += per_sample.sum(0)
        if self.phi == "max_prob":
            defect = probs[:, 1:].masked_fill(~valid[:, None], 0.0).flatten(2)
            phi = defect.sum(1).amax(1).clamp_max(1.0).double().cpu()  # exact where p(bg) ~ 1; rounding stays <= 1
            phi_class = defect.amax(2).double().cpu()
        else:
            phi = per_sample[:, :, 1:].sum((1, 2)).double()
            phi_class = per_sample[:, :, 1:].sum(1).double()
        if probs is not None and self.pixel_histogram:
            self._add_pixel_hist(probs, target, valid)
        self._add_samples(per_sample, phi, phi_class, cap, self._instance_fails(labels, target, valid, area_scale))
        first = self._seen - target.shape[0]
        self.sample_ids.extend(list(ids) if ids is not None else [f"#{i}" for i in range(first, self._seen)])
        if class_logits is not None:
            keep = (per_sample.sum((1, 2)) > 0).numpy()
            self._class_probs.append(torch.sigmoid(class_logits.detach().float()).cpu().numpy()[keep])

    def _instance_fails(
        self, labels: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, area_scale: Sequence[float] | None
    ) -> np.ndarray:
        """Per sample and defect class `[B, C-1]`, whether a predicted instance of the class fails the part
        by the QC rule (all True without one)."""
        b = target.shape[0]
        if self._instances is None or b == 0:
            return np.full((b, self.num_classes - 1), self._instances is None, dtype=bool)
        scale = np.ones(b) if area_scale is None else np.asarray(area_scale, dtype=np.float64)
        pred = labels.masked_fill(~valid, 0).cpu().numpy()
        gt = target.masked_fill(~valid, 0).cpu().numpy()
        names = list(self.class_names)
        return np.stack([self._instances.add(pred[i], gt[i], names, self.qc, scale[i]) for i in range(b)])

    def _check_target(self, target: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
        if target.dim() != 3 or target.dtype.is_floating_point or target.dtype == torch.bool:
            raise ValueError(f"target must be an integer tensor [B, H, W], got {target.dtype} {list(target.shape)}")
        target = target.to(device=preds.device, dtype=torch.int64)
        bad = (target < 0) | (target >= self.num_classes)
        if self.ignore_index is not None:
            bad &= target != self.ignore_index
        if bad.any():
            values = sorted(set(target[bad].unique().tolist()))[:5]
            raise AutoNADError(
                f"mask values {values} are outside the class range 0..{self.num_classes - 1}"
                f" (ignore_index {self.ignore_index})"
            )
        return target

    def _split_preds(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predicted labels `[B,H,W]` and, from logits, the class probabilities `[B,C,H,W]`."""
        b, h, w = target.shape
        if preds.dtype.is_floating_point:
            if tuple(preds.shape) != (b, self.num_classes, h, w):
                raise ValueError(f"logits must be [{b}, {self.num_classes}, {h}, {w}], got {list(preds.shape)}")
            probs = torch.softmax(preds.float(), dim=1)
            return decode_labels(probs, self.pixel_thresholds), probs
        if tuple(preds.shape) != (b, h, w):
            raise ValueError(f"predicted labels must be [{b}, {h}, {w}], got {list(preds.shape)}")
        if self.phi == "max_prob":
            raise ValueError("phi='max_prob' needs logits [B, C, H, W], not predicted labels")
        if self.pixel_thresholds is not None:
            raise ValueError("pixel thresholds need logits [B, C, H, W], not predicted labels")
        labels = preds.long()
        if ((labels < 0) | (labels >= self.num_classes)).any():
            raise ValueError(f"predicted labels outside 0..{self.num_classes - 1}")
        return labels, None

    def _valid(self, target: torch.Tensor) -> torch.Tensor:
        if self.ignore_index is None:
            return torch.ones_like(target, dtype=torch.bool)
        return target != self.ignore_index

    def _per_sample_confusion(self, labels: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """One C x C confusion matrix per sample, `[B, C, C]` int64 on CPU, from a single bincount."""
        b, c = target.shape[0], self.num_classes
        sample = torch.arange(b, device=target.device).view(b, 1, 1)
        index = ((sample * c + target) * c + labels)[valid]
        return torch.bincount(index, minlength=b * c * c).view(b, c, c).cpu()

    def _cap_probs(self, cap_logits: torch.Tensor | None, batch: int) -> np.ndarray:
        has_cap = cap_logits is not None
        if self._has_cap is not None and self._has_cap != has_cap:
            raise ValueError("cap_logits must be given for every batch or for none")
        if cap_logits is not None and cap_logits.numel() != batch:
            raise ValueError(f"cap_logits must have one logit per sample ({batch}), got {list(cap_logits.shape)}")
        self._has_cap = has_cap
        if cap_logits is None:
            return np.full(batch, np.nan)
        return torch.sigmoid(cap_logits.detach().float().reshape(batch)).double().cpu().numpy()

    def _add_pixel_hist(self, probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        c = self.num_classes
        top, index = probs[:, 1:].max(1)
        bins = (top * PIXEL_BINS).long().clamp_(0, PIXEL_BINS - 1)
        flat = ((index * PIXEL_BINS + bins) * c + target)[valid]
        self._pixel_hist += torch.bincount(flat, minlength=(c - 1) * PIXEL_BINS * c).view(c - 1, PIXEL_BINS, c).cpu()

    def _add_samples(
        self, cm: torch.Tensor, phi: torch.Tensor, phi_class: torch.Tensor, cap: np.ndarray, qc: np.ndarray
    ) -> None:
        keep = cm.sum((1, 2)) > 0  # a sample with every pixel ignored is not a sample
        self._positions.append(self._seen + np.flatnonzero(keep.numpy()))
        self._seen += len(keep)
        cm, phi, phi_class, cap, qc = cm[keep], phi[keep], phi_class[keep], cap[keep.numpy()], qc[keep.numpy()]
        self._sample_cms.append(cm.numpy())
        gt = cm[:, 1:, :].sum((1, 2))
        pred = cm[:, :, 1:].sum((1, 2))
        inter = cm[:, 1:, 1:].sum((1, 2))
        rows = {"phi": phi, "phi_class": phi_class, "label": gt > 0, "inter": inter, "union": gt + pred - inter,
                "gt": gt}  # fmt: skip
        for key, value in rows.items():
            self._rows[key].append(value.numpy())
        self._rows["cap"].append(cap)
        self._rows["qc"].append(qc)
        self._add_class_sample_iou(cm)

    def _add_class_sample_iou(self, cm: torch.Tensor) -> None:
        inter = cm.diagonal(dim1=1, dim2=2)
        union = cm.sum(2) + cm.sum(1) - inter
        present = union > 0
        iou = torch.where(present, inter.double() / union.clamp_min(1).double(), torch.zeros((), dtype=torch.float64))
        self._class_iou_sum += iou.sum(0).numpy()
        self._class_iou_count += present.sum(0).numpy()

    # ------------------------------------------------------------------------- merge / read

    def merge(self, other: SegMetrics) -> SegMetrics:
        """Add another accumulator's counts (same classes, ignore_index and phi) into this one."""
        same = (self.num_classes, self.ignore_index, self.phi) == (other.num_classes, other.ignore_index, other.phi)
        if not same:
            raise ValueError("can only merge SegMetrics with the same num_classes, ignore_index and phi")
        if None not in (self._has_cap, other._has_cap) and self._has_cap != other._has_cap:
            raise ValueError("cannot merge an accumulator with cap_logits into one without")
        self._confusion += other._confusion
        self._class_iou_sum += other._class_iou_sum
        self._class_iou_count += other._class_iou_count
        for key in _ROW_FIELDS:
            self._rows[key].extend(other._rows[key])
        self._positions.extend(p + self._seen for p in other._positions)
        self._sample_cms.extend(other._sample_cms)
        self._class_probs.extend(other._class_probs)
        self._pixel_hist += other._pixel_hist
        self.sample_ids.extend(other.sample_ids)
        self._seen += other._seen
        self._has_cap = other._has_cap if self._has_cap is None else self._has_cap
        if self._instances is not None and other._instances is not None:
            self._instances.merge(other._instances)
        return self

    def _concat_rows(self) -> dict[str, np.ndarray]:
        dtypes = {"phi": np.float64, "phi_class": np.float64, "label": bool, "cap": np.float64, "qc": bool}
        empty = {k: (0, self.num_classes - 1) if k in ("phi_class", "qc") else (0,) for k in self._rows}
        return {k: np.concatenate(v) if v else np.zeros(empty[k], dtype=dtypes.get(k, np.int64))
                for k, v in self._rows.items()}  # fmt: skip

    def sample_rows(self) -> dict[str, np.ndarray]:
        """Per sample, in update order: `position` (its index among every sample updated; those with
        every pixel ignored are left out), `phi`, `label` (GT defective), pooled defect `inter` and
        `union`, `gt` (GT defect pixels) and `pred` (predicted defect pixels)."""
        rows = self._concat_rows()
        rows["position"] = np.concatenate(self._positions) if self._positions else np.zeros(0, dtype=np.int64)
        rows["pred"] = rows["union"] - rows["gt"] + rows["inter"]
        return rows

    def bootstrap_se(
        self, keys: Sequence[str] = BOOTSTRAP_KEYS, resamples: int = 200, seed: int = 0, tau: float | None = None
    ) -> dict[str, float | None]:
        """The standard error of each metric in `keys` (MetricsReport.to_dict names) over `resamples`
        draws of the samples with replacement: how far a score on this many images could move on
        another draw of them (None where a metric is undefined or there are fewer than 2 samples)."""
        cms = self._stacked_cms()
        n = len(cms)
        if n < 2:
            return dict.fromkeys(keys)
        rows, rng = self._concat_rows(), np.random.default_rng(seed)
        values: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(resamples):
            report = self._resampled(cms, rows, rng.integers(0, n, n)).compute(tau).to_dict()
            for k in keys:
                if report.get(k) is not None:
                    values[k].append(float(report[k]))
        return {k: float(np.std(v, ddof=1)) if len(v) > 1 else None for k, v in values.items()}

    def _resampled(self, cms: np.ndarray, rows: dict[str, np.ndarray], index: np.ndarray) -> SegMetrics:
        """An accumulator holding the samples at `index` (with repeats) of this one."""
        other = SegMetrics(self.num_classes, self.ignore_index, self.phi, self.tau, self.cap_threshold,
                           self.class_names)  # fmt: skip
        picked = torch.from_numpy(cms[index])
        other._confusion = picked.sum(0)
        other._add_class_sample_iou(picked)
        other._rows = {k: [v[index]] for k, v in rows.items()}
        other._has_cap = self._has_cap
        return other

    def sample_scores(self) -> SampleScores:
        """Per-sample (and per defect class) scores and GT, e.g. for `calibrate_tau` on validation."""
        rows = self._concat_rows()
        class_label, _ = self._class_presence()
        return SampleScores(_seg_phi(rows), rows["label"], rows["cap"] if self._has_cap else None,
                            _seg_phi(rows, "phi_class"), class_label, self._class_prob_rows(),
                            tuple(self.class_names[1:]))  # fmt: skip

    def pixel_thresholds_fit(self) -> list[float | None]:
        """Per defect class, the pixel-probability threshold that maximises the mIoU on the pixels seen
        (from logits; `_pixel_threshold_fit`), to be stored in the decision and passed back as
        `pixel_thresholds`."""
        if not self.pixel_histogram:
            raise ValueError("pixel thresholds are fitted on an accumulator made with pixel_histogram=True")
        return _pixel_threshold_fit(self._pixel_hist.numpy())

    def calibrate(self, target: str | CalibrationTarget = "f1") -> float:
        """tau for this accumulator's phi scores (collected on validation) meeting `target`."""
        scores = self.sample_scores()
        return calibrate_tau(scores.phi, scores.label, target)

    def _stacked_cms(self) -> np.ndarray:
        """The kept samples' confusion matrices `[N, C, C]`."""
        c = self.num_classes
        return np.concatenate(self._sample_cms) if self._sample_cms else np.zeros((0, c, c), dtype=np.int64)

    def _class_presence(self) -> tuple[np.ndarray, np.ndarray]:
        """Per kept sample and defect class `[N, C-1]`: a GT pixel of the class, a predicted one."""
        cms = self._stacked_cms()
        return cms[:, 1:, :].sum(2) > 0, cms[:, :, 1:].sum(1) > 0

    def _per_class_sample(self, rows: dict[str, np.ndarray], class_tau: np.ndarray | None):
        """Per defect class: "has class c" from a predicted pixel of c, or with per-class taus phi_c >= tau_c."""
        gt, pred = self._class_presence()
        if class_tau is not None:
            pred = _seg_phi(rows, "phi_class") >= class_tau[None, :]
        return _per_class_rates(self.class_names[1:], pred, gt)

    def _class_prob_rows(self) -> np.ndarray | None:
        if not self._class_probs:
            return None
        probs = np.concatenate(self._class_probs)
        if probs.shape != (self.num_samples, self.num_classes - 1):
            raise ValueError(f"class logits must be [B, {self.num_classes - 1}] for every batch, got {probs.shape[1:]}")
        return probs

    def _per_class_cap(self, thresholds: np.ndarray | None) -> dict[str, dict[str, float | None]] | None:
        probs = self._class_prob_rows()
        if probs is None:
            return None
        gt, _ = self._class_presence()
        cut = np.full(self.num_classes - 1, 0.5) if thresholds is None else thresholds
        return _per_class_rates(self.class_names[1:], probs >= cut[None, :], gt)

    def compute(
        self,
        tau: float | None = None,
        cap_threshold: float | None = None,
        rule: str = "seg",
        class_tau: Sequence[float] | None = None,
        class_thresholds: Sequence[float] | None = None,
    ) -> MetricsReport:
        """The report; `tau` / `cap_threshold` override the configured ones (no new pass needed) and
        `decided` is the sample decision of `rule` (RULES); `class_tau` (per defect class) makes the
        segmentation's part per class (`seg_decisions`), `class_thresholds` are the class stage's."""
        prob = is_probability(self.phi)
        tau = self.tau if tau is None else check_threshold(tau, "tau", prob)
        class_tau = None if class_tau is None else self._per_class_values(class_tau, "class_tau", prob)
        class_cut = None if class_thresholds is None else self._per_class_values(class_thresholds, "class threshold")
        cap_threshold = (
            self.cap_threshold if cap_threshold is None else check_threshold(cap_threshold, "cap_threshold", True)
        )
        cm = self._confusion.numpy()
        iou, f1 = _class_scores(cm)
        rows = self._concat_rows()
        has_cap = bool(self._has_cap)
        names = self.class_names
        class_sample_iou = [_ratio(s, n) for s, n in zip(self._class_iou_sum, self._class_iou_count)]
        seg_yes = seg_decisions(_seg_phi(rows), tau, _seg_phi(rows, "phi_class"), class_tau)
        cap_yes = rows["cap"] >= cap_threshold if has_cap else None
        return MetricsReport(
            class_names=names,
            confusion=tuple(tuple(int(v) for v in row) for row in cm),
            per_class_iou=dict(zip(names, iou)),
            per_class_f1=dict(zip(names, f1)),
            miou=_mean(iou),
            miou_fg=_mean(iou[1:]),
            mf1=_mean(f1),
            mf1_fg=_mean(f1[1:]),
            pooled_iou=_pooled_iou(cm),
            per_class_sample_iou=dict(zip(names[1:], class_sample_iou[1:])),
            per_class_sample=self._per_class_sample(rows, class_tau),
            per_class_cap=self._per_class_cap(class_cut),
            sample=_sample_metrics(rows["phi"], rows["label"], rows["inter"], rows["union"], tau),
            cap=BinaryCounts.from_decisions(rows["cap"] >= cap_threshold, rows["label"]) if has_cap else None,
            cap_gated=_gated_metrics(rows, tau, cap_threshold) if has_cap else None,
            phi=self.phi,
            tau=tau,
            cap_threshold=cap_threshold,
            num_samples=int(rows["label"].size),
            num_pixels=int(cm.sum()),
            rule=rule,
            instances=self._instances.to_dict(list(names)) if self._instances is not None else None,
            decided=BinaryCounts.from_decisions(decide(rule, seg_yes, cap_yes), rows["label"]),
        )

    def _per_class_values(self, values: Sequence[float], what: str, probability: bool = True) -> np.ndarray:
        if len(values) != self.num_classes - 1:
            raise ValueError(f"{len(values)} values of {what} for {self.num_classes - 1} defect classes")
        return np.array([check_threshold(v, what, probability) for v in values], dtype=np.float64)


# ----------------------------------------------------------------------------- calibration

_TARGET_METRICS = ("f1", "accuracy", "precision+recall")
_TARGET_RE = re.compile(r"^(recall|precision)\s*>=\s*(\d+(?:\.\d*)?|\.\d+)$")


@dataclass(frozen=True)
class CalibrationTarget:
    """What tau should achieve: maximise `metric`, or meet `metric >= minimum` (then best of the other)."""

    metric: Literal["recall", "precision", "f1", "accuracy", "precision+recall"]
    minimum: float | None = None

    def __str__(self) -> str:
        return self.metric if self.minimum is None else f"{self.metric}>={self.minimum:g}"


def parse_target(text: str) -> CalibrationTarget:
    """Parse "recall>=0.95", "precision>=0.9", "f1", "accuracy" or "precision+recall"."""
    norm = re.sub(r"\s+", "", str(text)).lower()
    if norm in _TARGET_METRICS:
        return CalibrationTarget(norm)  # type: ignore[arg-type]
    match = _TARGET_RE.match(norm)
    expected = "expected 'recall>=X' or 'precision>=X' with 0 < X <= 1, 'f1', 'accuracy' or 'precision+recall'"
    if match is None:
        raise AutoNADError(f"bad calibration target '{text}': {expected}")
    minimum = float(match.group(2))
    if not 0 < minimum <= 1:
        raise AutoNADError(f"bad calibration target '{text}': {expected}")
    return CalibrationTarget(match.group(1), minimum)  # type: ignore[arg-type]


def calibrate_tau(
    scores: Sequence[float] | np.ndarray | torch.Tensor,
    labels: Sequence[bool] | np.ndarray | torch.Tensor,
    target: str | CalibrationTarget = "f1",
) -> float:
    """tau for the decision `score >= tau` that best meets `target` on validation scores.

    Candidates are the distinct scores (so at least the top-scoring sample is called defective).
    "recall>=X" maximises precision among taus with recall >= X, "precision>=X" maximises recall
    among taus with precision >= X; "f1", "accuracy", "precision+recall" maximise that value.
    Ties go to the higher recall (misses cost more than false alarms). Raises AutoNADError when
    no defective sample is given or no tau meets the constraint.
    """
    goal = target if isinstance(target, CalibrationTarget) else parse_target(target)
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if not y.any():
        raise AutoNADError("calibrating tau needs at least one defective sample in the validation set")
    taus, recall, precision, f1, accuracy = _sweep(s, y)
    objective, tie, feasible = {
        "recall": (precision, recall, recall >= (goal.minimum or 0.0)),
        "precision": (recall, precision, precision >= (goal.minimum or 0.0)),
        "f1": (f1, recall, None),
        "accuracy": (accuracy, recall, None),
        "precision+recall": (precision + recall, recall, None),
    }[goal.metric]
    candidates = np.flatnonzero(feasible) if feasible is not None else np.arange(taus.size)
    if candidates.size == 0:
        best = {"recall": recall, "precision": precision}[goal.metric].max()
        raise AutoNADError(f"no tau reaches {goal} on {s.size} validation samples (best {goal.metric} {best:.3f})")
    order = np.lexsort((tie[candidates], objective[candidates]))  # last = max objective, then max tie
    return float(taus[candidates[order[-1]]])


def _sweep(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Recall, precision, F1 and accuracy of `s >= tau` for every distinct score tau (descending)."""
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_group]
    fp = np.cumsum(~y)[last_of_group]
    pos, neg = int(y.sum()), int((~y).sum())
    recall = tp / pos
    precision = tp / (tp + fp)
    f1 = 2 * tp / (2 * tp + fp + (pos - tp))
    accuracy = (tp + neg - fp) / (pos + neg)
    return s[last_of_group], recall, precision, f1, accuracy
