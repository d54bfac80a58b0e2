"""The pass/fail decision a line acts on: its rule, thresholds and their calibration (papers 000, 004).

    decision = calibrate(metrics.sample_scores(), rule="gated", phi="max_prob", target="recall>=0.95")
    decision.decide(phi, cap_prob)            # bool per sample
    model.json["decision"] = decision.to_dict()

Rules (`autonad.metrics.RULES`): `seg` (phi >= tau), `cap` (CaP p(defect) >= cap_threshold), `gated`
(CaP-gated segmentation: masks only where CaP says defective), `agree` (both), `any` (either).
Calibration tunes the thresholds on validation scores for a target such as `recall>=0.95`: one at a
time for `seg`/`cap`; for the two-threshold rules alternately, each fitted with the other fixed (paper
004 alternates its threshold and weight fits the same way) until neither moves.

Per class (`calibrate(..., per_class=True)`): each defect class gets its own sample-level tau on its
own score phi_c (the part is defective when any class c has phi_c >= tau_c), CaP's class stage its
own threshold on p_c, and the mask its own pixel-probability threshold (`pixel_thresholds`, fitted
for the class's IoU by `SegMetrics.pixel_thresholds_fit`), so a tail class is not held to the
threshold that suits the common one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autonad.errors import AutoNADError
from autonad.instances import QCRule
from autonad.metrics import (
    DEFAULT_TAU,
    PHIS,
    RULES,
    BinaryCounts,
    CalibrationTarget,
    SampleScores,
    calibrate_tau,
    check_threshold,
    decide,
    is_probability,
    parse_target,
    seg_decisions,
)

ROUNDS = 8  # alternating fits at most
CURVE_FILE = "calibration.png"  # a run's validation curve of its calibrated decision


@dataclass(frozen=True)
class Decision:
    rule: str = "seg"
    phi: str = "pixels"
    tau: float = DEFAULT_TAU["pixels"]
    cap_threshold: float = 0.5
    target: str | None = None  # what calibration aimed at, e.g. "recall>=0.95"
    calibrated_on: str | None = None  # "<dataset> val"
    min_area: float = 0  # QC: predicted defects under this many pixels do not fail a part
    fail_area: dict[str, float] = field(default_factory=dict)  # QC: class -> fails the part only above this area
    class_tau: dict[str, float] = field(default_factory=dict)  # per defect class tau on phi_c (replaces tau)
    class_thresholds: dict[str, float] = field(default_factory=dict)  # CaP class stage: class -> p_c threshold
    pixel_thresholds: dict[str, float] = field(default_factory=dict)  # mask: class -> pixel p_c threshold

    def __post_init__(self):
        if not isinstance(self.rule, str) or not isinstance(self.phi, str):
            raise AutoNADError(f"decision rule and phi: expected names, got {self.rule!r} and {self.phi!r}")
        if self.rule not in RULES:
            raise AutoNADError(f"unknown decision rule '{self.rule}' (choose from: {', '.join(RULES)})")
        if self.phi not in PHIS:
            raise AutoNADError(f"unknown phi '{self.phi}' (choose from: {', '.join(PHIS)})")
        prob = is_probability(self.phi)  # tau and class_tau cut phi; the other thresholds probabilities
        check_threshold(self.tau, "decision tau", prob)
        check_threshold(self.cap_threshold, "decision cap_threshold", probability=True)
        for name, value in [("min_area", self.min_area), *self.fail_area.items()]:
            check_threshold(value, f"decision area {name} (pixels)")
        for table in PER_CLASS:
            for name, value in getattr(self, table).items():
                check_threshold(value, f"decision {table} of {name}", prob or table != "class_tau")

    @property
    def qc(self) -> QCRule | None:
        """The QC rule on defect instances, where one is set."""
        rule = QCRule(self.min_area, dict(self.fail_area))
        return rule if rule.active else None

    @property
    def uses_cap(self) -> bool:
        return self.rule != "seg"

    def check(self, has_cap: bool, where: str) -> None:
        if self.uses_cap and not has_cap:
            raise AutoNADError(f"{where}: decision rule '{self.rule}' needs a CaP presence output, and it has none")

    def check_classes(self, classes: list[str], where: str) -> None:
        """The per-class thresholds name defect classes of the model (`classes`, background first), and
        per-class taus name every one (the segmentation's part is decided from them alone)."""
        defects = classes[1:]
        for table in PER_CLASS:
            unknown = sorted(set(getattr(self, table)) - set(defects))
            if unknown:
                raise AutoNADError(f"{where}: decision {table} names '{unknown[0]}', not a defect class of the "
                                   f"model ({', '.join(defects)})")  # fmt: skip
        missing = [c for c in defects if self.class_tau and c not in self.class_tau]
        if missing:
            raise AutoNADError(f"{where}: decision class_tau lacks defect class '{missing[0]}'")

    def class_taus(self, classes: list[str]) -> np.ndarray | None:
        """Per defect class of `classes` (background first) its tau, or None when the decision has none."""
        return np.array([self.class_tau[c] for c in classes[1:]]) if self.class_tau else None

    def class_cuts(self, classes: list[str]) -> np.ndarray | None:
        """Per defect class the class stage's threshold (0.5 where not calibrated), or None when none is."""
        return np.array([self.class_thresholds.get(c, 0.5) for c in classes[1:]]) if self.class_thresholds else None

    def pixel_cuts(self, classes: list[str]) -> list[float | None] | None:
        """Per defect class the mask's pixel threshold (None: the argmax), or None when none is set."""
        return [self.pixel_thresholds.get(c) for c in classes[1:]] if self.pixel_thresholds else None

    def decide(
        self,
        phi: np.ndarray,
        cap_prob: np.ndarray | None,
        qc: np.ndarray | None = None,
        phi_class: np.ndarray | None = None,
        classes: list[str] | None = None,
    ) -> np.ndarray:
        """Per sample: defective? (`qc` `[N, C-1]`: per defect class, where a QC rule lets the segmentation
        call the part defective for that class; default everywhere; `phi_class` `[N, C-1]` and the model's
        `classes`: for per-class taus, each class gated by its own QC)."""
        cap_yes = None if cap_prob is None else np.asarray(cap_prob) >= self.cap_threshold
        class_tau = self.class_taus(classes) if self.class_tau and classes is not None else None
        if self.class_tau and class_tau is None:
            raise ValueError("a decision with per-class taus needs the model's classes")
        if qc is not None:
            qc = np.asarray(qc, dtype=bool)
            phi = np.where(qc.any(1), phi, -1.0)  # -1: never (taus are >= 0)
            phi_class = None if phi_class is None else np.where(qc, phi_class, -1.0)
        return decide(self.rule, seg_decisions(phi, self.tau, phi_class, class_tau), cap_yes)

    def decide_scores(self, scores: SampleScores) -> np.ndarray:
        return self.decide(scores.phi, scores.cap_prob, None, scores.phi_class, ["background", *scores.classes])

    def keeps_mask(self, cap_prob: float | None) -> bool:
        """Whether a sample's predicted mask stands (the gated rule empties it where CaP says clean)."""
        return self.rule != "gated" or cap_prob is None or cap_prob >= self.cap_threshold

    def describe(self) -> str:
        seg, cap = f"{self.phi} >= {self.tau:.4g}", f"CaP >= {self.cap_threshold:.4g}"
        if self.class_tau:
            seg = "any class c with phi_c >= tau_c (" + _listed(self.class_tau) + ")"
        text = {"seg": seg, "cap": cap, "gated": f"{cap}, then {seg} on the gated mask", "agree": f"{seg} and {cap}",
                "any": f"{seg} or {cap}"}[self.rule]  # fmt: skip
        if self.qc is not None:
            limits = [f"a {c} over {a:g} px" for c, a in self.fail_area.items()]
            others = "any other defect" if limits else "a defect"
            limits.append(f"{others} of {self.min_area:g} px or more" if self.min_area else f"{others}")
            text += f", the segmentation counting only {' or '.join(limits)}"
        how = f", calibrated for {self.target} on {self.calibrated_on}" if self.target else ""
        extra = "".join(f"; {what} {_listed(getattr(self, table))}" for table, what in
                        [("pixel_thresholds", "mask pixel thresholds"), ("class_thresholds", "class-stage thresholds")]
                        if getattr(self, table))  # fmt: skip
        return f"defective when {text} (rule {self.rule}{how}){extra}"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if not self.uses_cap:
            out.pop("cap_threshold")
        if self.qc is None:
            out.pop("min_area"), out.pop("fail_area")
        return {k: v for k, v in out.items() if k not in PER_CLASS or v}

    @staticmethod
    def from_dict(data: Any, where: str = "decision") -> Decision:
        """A stored decision; those written before rules existed ({phi, tau[, target, calibrated_on]}) are `seg`."""
        if not isinstance(data, dict):
            raise AutoNADError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(Decision)})
        if unknown:
            raise AutoNADError(f"{where}: unknown key '{unknown[0]}'")
        phi = data.get("phi", "pixels")
        for key in ("fail_area", *PER_CLASS):
            if not isinstance(data.get(key, {}), dict):
                raise AutoNADError(f"{where}: {key}: expected a mapping of class to number")
        return Decision(**_migrated_never({"tau": DEFAULT_TAU.get(phi, 1.0), **data}))

    def with_phi(self, phi: str) -> Decision:
        """The decision on another sample score (its default taus: the old ones mean nothing there)."""
        return self if phi == self.phi else dataclasses.replace(self, phi=phi, tau=DEFAULT_TAU[phi], target=None,
                                                               calibrated_on=None, class_tau={})  # fmt: skip


PER_CLASS = ("class_tau", "class_thresholds", "pixel_thresholds")  # Decision's per-defect-class tables


def _migrated_never(data: dict[str, Any]) -> dict[str, Any]:
    """Calibrations before the never-as-rule fix stored "never on its own" under "any" as a probability
    threshold above 1 (the max score + 1): exactly the other score's rule, so it loads as that."""
    if data.get("rule") != "any":
        return data
    over = [isinstance(data.get(k), (int, float)) and data[k] > 1 + 1e-6 for k in ("cap_threshold", "tau")]
    if over[0]:
        data = {**data, "rule": "seg", "cap_threshold": 0.5}
    elif over[1] and data.get("phi") == "max_prob" and not data.get("class_tau"):
        data = {**data, "rule": "cap", "tau": DEFAULT_TAU["max_prob"]}
    return data


def _listed(table: dict[str, float]) -> str:
    return ", ".join(f"{c} {v:.4g}" for c, v in table.items())


def calibrate(
    scores: SampleScores, rule: str, phi: str, target: str, calibrated_on: str | None = None, per_class: bool = False
) -> Decision:
    """The thresholds of `rule` meeting `target` on validation `scores` (see the module docstring); with
    `per_class` also each defect class's tau and class-stage threshold (the pixel thresholds come from
    the pixels: `SegMetrics.pixel_thresholds_fit`). Per-class taus that miss a `recall>=X` /
    `precision>=X` target for the whole part (each class on its own may meet it while the parts do
    not) give way to the one tau: the result then has no `class_tau` (`calibrate_decision` says so)."""
    goal = parse_target(target)
    base = Decision(rule, phi, DEFAULT_TAU[phi], 0.5, str(goal), calibrated_on)
    base.check(scores.cap_prob is not None, "the model")
    if per_class and scores.phi_class is None:
        raise AutoNADError("per-class calibration needs per-class sample scores")
    if per_class and scores.class_prob is not None:
        base = dataclasses.replace(base, class_thresholds=_class_stage_thresholds(scores, goal))
    if per_class and rule != "cap":
        try:
            decision = _fit_rule(scores, base, goal, True)
            _check_reached(decision, scores, goal)
            return decision
        except AutoNADError:
            pass  # the one tau below
    return _fit_rule(scores, base, goal, False)


def _fit_rule(scores: SampleScores, base: Decision, goal: CalibrationTarget, per_class: bool) -> Decision:
    rule, label, cap = base.rule, scores.label, scores.cap_prob
    if rule == "cap":
        return dataclasses.replace(base, cap_threshold=calibrate_tau(cap, label, goal))
    seg = _SegFit(scores, goal, _alone(scores.phi, label, goal, rule), per_class)
    if rule == "seg":
        return dataclasses.replace(base, **seg.fit(None, rule))
    cap_threshold = _alone(cap, label, goal, rule)
    fitted = seg.fit(None, rule)
    for _ in range(ROUNDS):
        new_seg = seg.fit(cap >= cap_threshold, rule)
        new_cap = _fit_one(cap, seg.decisions(new_seg), rule, label, goal, cap_threshold)
        if (new_seg, new_cap) == (fitted, cap_threshold):
            break
        fitted, cap_threshold = new_seg, new_cap
    decision = _never_as_rule(base, fitted, cap_threshold)
    _check_reached(decision, scores, goal)
    return decision


def _alone(score: np.ndarray, label: np.ndarray, goal: CalibrationTarget, rule: str) -> float:
    """The threshold meeting `goal` with this score alone: where it cannot, under "any" the score
    starts as never firing (inf; the other score may reach the goal), elsewhere one line."""
    try:
        return max(calibrate_tau(score, label, goal), 0.0)
    except AutoNADError:
        if rule != "any":
            raise
        return math.inf


def _never_as_rule(base: Decision, fitted: dict[str, Any], cap_threshold: float) -> Decision:
    """The fitted thresholds as a decision. Under "any" a score may be fitted to fire never on its own
    (`_fit_one`: inf): that is the other score's rule alone (CaP never: `seg`; the segmentation's
    tau never, without per-class taus: `cap`), with the unused threshold left at its default."""
    rule, fitted = base.rule, dict(fitted)
    if math.isinf(cap_threshold):
        rule, cap_threshold = "seg", base.cap_threshold
    if math.isinf(fitted["tau"]):
        rule = rule if "class_tau" in fitted else "cap"
        fitted["tau"] = base.tau
    return dataclasses.replace(base, rule=rule, **fitted, cap_threshold=cap_threshold)


@dataclass
class _SegFit:
    """The segmentation's thresholds fitted with CaP's decisions fixed: the tau on phi and, `per_class`,
    one tau per defect class on phi_c against "has class c". A class validation lacks takes the lowest
    tau fitted for the others (phi_c's scale, not phi's: max p_c <= max(1 - p_bg); the recall side)."""

    scores: SampleScores
    goal: CalibrationTarget
    overall: float  # the tau fitted on phi alone
    per_class: bool

    def fit(self, cap_yes: np.ndarray | None, rule: str) -> dict[str, Any]:
        s, goal = self.scores, self.goal
        tau = self.overall if cap_yes is None else _fit_one(s.phi, cap_yes, rule, s.label, goal, self.overall)
        if not self.per_class:
            return {"tau": tau}
        taus = {}
        for c, name in enumerate(s.classes):
            score, label = s.phi_class[:, c], s.class_label[:, c]
            if not label.any():
                continue  # below, from the classes validation has
            if cap_yes is None or rule == "any":  # under "any" CaP adds parts, it empties no mask
                try:
                    taus[name] = max(calibrate_tau(score, label, goal), 0.0)
                except AutoNADError:  # out of the class's reach: the part-level check decides
                    taus[name] = self.overall if math.isfinite(self.overall) else float(score.max())
            else:
                taus[name] = _fit_one(score, cap_yes, rule, label, goal, tau)  # an "and" rule: tau is finite
        unseen = min(taus.values(), default=tau)
        return {"tau": tau, "class_tau": {name: taus.get(name, unseen) for name in s.classes}}

    def decisions(self, fitted: dict[str, Any]) -> np.ndarray:
        """The segmentation's sample decisions under `fitted`."""
        s = self.scores
        class_tau = np.array([fitted["class_tau"][c] for c in s.classes]) if "class_tau" in fitted else None
        return seg_decisions(s.phi, fitted["tau"], s.phi_class, class_tau)


def _class_stage_thresholds(scores: SampleScores, goal: CalibrationTarget) -> dict[str, float]:
    """Per defect class the threshold on CaP's class-stage p_c meeting `goal` for "has class c" (classes
    validation lacks, or that no threshold brings to the goal, keep 0.5)."""
    out = {}
    for c, name in enumerate(scores.classes):
        label = scores.class_label[:, c]
        try:
            out[name] = calibrate_tau(scores.class_prob[:, c], label, goal) if label.any() else 0.5
        except AutoNADError:
            out[name] = 0.5
    return out


def _check_reached(decision: Decision, scores: SampleScores, goal: CalibrationTarget) -> None:
    """One line when the alternating fits end below a `recall>=X` / `precision>=X` target."""
    if goal.minimum is None:
        return
    counts = BinaryCounts.from_decisions(decision.decide_scores(scores), scores.label)
    value = getattr(counts, goal.metric) or 0.0
    if value < goal.minimum:
        raise AutoNADError(f"no thresholds of rule '{decision.rule}' reach {goal} on {scores.label.size} validation "
                           f"samples (best found {goal.metric} {value:.3f})")  # fmt: skip


def _fit_one(score: np.ndarray, other_yes: np.ndarray, rule: str, label: np.ndarray, goal: CalibrationTarget,
             current: float) -> float:  # fmt: skip
    """The threshold on `score` that best meets `goal` with the other score's decisions fixed: under
    "and" rules a sample the other calls clean is clean whatever this score is, under "any" it is
    defective (scores are >= 0, so -1 and max + 1 stand for never and always). Unreachable: unchanged.
    Under "any", a threshold above every score (this score never fires on its own) comes back as inf
    (`_never_as_rule`), not as a number a probability threshold could not hold."""
    never, always = -1.0, float(score.max()) + 1.0
    effective = np.where(other_yes, score, never) if rule != "any" else np.where(other_yes, always, score)
    try:
        tau = max(calibrate_tau(effective, label, goal), 0.0)
    except AutoNADError:
        return current
    return math.inf if rule == "any" and tau > score.max() else tau


def calibration_curve(scores: SampleScores, decision: Decision, path: Path) -> Path:
    """PNG of recall and precision on the calibration split as each threshold of `decision` moves (the
    others held at their chosen values), the chosen thresholds marked; with per-class taus one panel
    per defect class, its own recall and precision ("has class c") against its tau."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autonad.config import write_atomic

    panels = _curve_panels(scores, decision)
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (xlabel, score, chosen, yes_at, label) in zip(axes.flat, panels):
        thresholds, recall, precision = _curve(score, yes_at, label)
        ax.plot(thresholds, recall, label="recall", color="#c0392b")
        ax.plot(thresholds, precision, label="precision", color="#2471a3")
        ax.axvline(chosen, color="black", linestyle="--", linewidth=1, label=f"chosen {chosen:.4g}")
        ax.set(xlabel=xlabel, ylabel="validation", ylim=(-0.02, 1.02), title=f"rule {decision.rule}")
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def _curve_panels(scores: SampleScores, decision: Decision) -> list[tuple]:
    """(x label, scores swept, chosen value, threshold -> decisions, GT) per threshold of `decision`."""

    def moved(**change):
        return lambda t: dataclasses.replace(decision, **{k: v(t) for k, v in change.items()}).decide_scores(scores)

    panels = []
    if decision.rule != "cap" and not decision.class_tau:
        panels.append((f"tau ({decision.phi})", scores.phi, decision.tau, moved(tau=float), scores.label))
    for c, name in enumerate(scores.classes if decision.class_tau and decision.rule != "cap" else ()):
        gate = np.ones(scores.label.shape, bool)
        if decision.rule in ("gated", "agree"):
            gate = scores.cap_prob >= decision.cap_threshold
        score = scores.phi_class[:, c]
        panels.append((f"tau of {name} ({decision.phi})", score, decision.class_tau[name],
                       lambda t, score=score, gate=gate: gate & (score >= t), scores.class_label[:, c]))  # fmt: skip
    if decision.uses_cap:
        cap = ("cap_threshold (CaP p(defect))", scores.cap_prob, decision.cap_threshold, moved(cap_threshold=float))
        panels.append((*cap, scores.label))
    return panels


def _curve(score: np.ndarray, yes_at, label: np.ndarray):
    thresholds = np.unique(np.concatenate([score[score >= 0], [0.0]]))
    recall, precision = [], []
    for t in thresholds:
        yes = yes_at(float(t))
        tp, pos = int((yes & label).sum()), int(label.sum())
        recall.append(tp / pos if pos else np.nan)
        precision.append(tp / int(yes.sum()) if yes.any() else np.nan)
    return thresholds, recall, precision


__all__ = ["CURVE_FILE", "Decision", "calibrate", "calibration_curve"]
