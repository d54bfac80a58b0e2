"""The pass/fail decision a line acts on: its rule, thresholds and their calibration (papers 000, 004).

    decision = calibrate(metrics.sample_scores(), rule="gated", phi="max_prob", target="recall>=0.95")
    decision.decide(phi, cap_prob)            # bool per sample
    model.json["decision"] = decision.to_dict()

Rules (`autonad.metrics.RULES`): `seg` (phi >= tau), `cap` (CaP p(defect) >= cap_threshold), `gated`
(CaP-gated segmentation: masks only where CaP says defective), `agree` (both), `any` (either).
Calibration tunes the thresholds on validation scores for a target such as `recall>=0.95`: one at a
time for `seg`/`cap`; for the two-threshold rules alternately, each fitted with the other fixed (paper
004 alternates its threshold and weight fits the same way) until neither moves.
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
    decide,
    parse_target,
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

    def __post_init__(self):
        if not isinstance(self.rule, str) or not isinstance(self.phi, str):
            raise AutoNADError(f"decision rule and phi: expected names, got {self.rule!r} and {self.phi!r}")
        if self.rule not in RULES:
            raise AutoNADError(f"unknown decision rule '{self.rule}' (choose from: {', '.join(RULES)})")
        if self.phi not in PHIS:
            raise AutoNADError(f"unknown phi '{self.phi}' (choose from: {', '.join(PHIS)})")
        for name in ("tau", "cap_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise AutoNADError(f"decision {name}: expected a number >= 0, got {value!r}")
        for name, value in [("min_area", self.min_area), *self.fail_area.items()]:
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise AutoNADError(f"decision area {name}: expected a number of pixels >= 0, got {value!r}")

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

    def decide(self, phi: np.ndarray, cap_prob: np.ndarray | None, qc: np.ndarray | None = None) -> np.ndarray:
        """Per sample: defective? (`qc`: where a QC rule lets the segmentation say so; default everywhere)."""
        cap_yes = None if cap_prob is None else np.asarray(cap_prob) >= self.cap_threshold
        seg_yes = np.asarray(phi) >= self.tau
        return decide(self.rule, seg_yes if qc is None else seg_yes & np.asarray(qc, dtype=bool), cap_yes)

    def keeps_mask(self, cap_prob: float | None) -> bool:
        """Whether a sample's predicted mask stands (the gated rule empties it where CaP says clean)."""
        return self.rule != "gated" or cap_prob is None or cap_prob >= self.cap_threshold

    def describe(self) -> str:
        seg, cap = f"{self.phi} >= {self.tau:.4g}", f"CaP >= {self.cap_threshold:.4g}"
        text = {"seg": seg, "cap": cap, "gated": f"{cap}, then {seg} on the gated mask", "agree": f"{seg} and {cap}",
                "any": f"{seg} or {cap}"}[self.rule]  # fmt: skip
        if self.qc is not None:
            limits = [f"a {c} over {a:g} px" for c, a in self.fail_area.items()]
            others = "any other defect" if limits else "a defect"
            limits.append(f"{others} of {self.min_area:g} px or more" if self.min_area else f"{others}")
            text += f", the segmentation counting only {' or '.join(limits)}"
        how = f", calibrated for {self.target} on {self.calibrated_on}" if self.target else ""
        return f"defective when {text} (rule {self.rule}{how})"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if not self.uses_cap:
            out.pop("cap_threshold")
        if self.qc is None:
            out.pop("min_area"), out.pop("fail_area")
        return out

    @staticmethod
    def from_dict(data: Any, where: str = "decision") -> Decision:
        """A stored decision; those written before rules existed ({phi, tau[, target, calibrated_on]}) are `seg`."""
        if not isinstance(data, dict):
            raise AutoNADError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(Decision)})
        if unknown:
            raise AutoNADError(f"{where}: unknown key '{unknown[0]}'")
        phi = data.get("phi", "pixels")
        if not isinstance(data.get("fail_area", {}), dict):
            raise AutoNADError(f"{where}: fail_area: expected a mapping of class to area")
        return Decision(**{"tau": DEFAULT_TAU.get(phi, 1.0), **data})

    def with_phi(self, phi: str) -> Decision:
        """The decision on another sample score (its default tau: the old tau means nothing there)."""
        return self if phi == self.phi else dataclasses.replace(self, phi=phi, tau=DEFAULT_TAU[phi], target=None,
                                                               calibrated_on=None)  # fmt: skip


def calibrate(scores: SampleScores, rule: str, phi: str, target: str, calibrated_on: str | None = None) -> Decision:
    """The thresholds of `rule` meeting `target` on validation `scores` (see the module docstring)."""
    goal = parse_target(target)
    base = Decision(rule, phi, DEFAULT_TAU[phi], 0.5, str(goal), calibrated_on)
    base.check(scores.cap_prob is not None, "the model")
    label, cap = scores.label, scores.cap_prob
    if rule == "seg":
        return dataclasses.replace(base, tau=max(calibrate_tau(scores.phi, label, goal), 0.0))
    cap_threshold = calibrate_tau(cap, label, goal)
    if rule == "cap":
        return dataclasses.replace(base, cap_threshold=cap_threshold)
    tau = max(calibrate_tau(scores.phi, label, goal), 0.0)
    for _ in range(ROUNDS):
        new_tau = _fit_one(scores.phi, cap >= cap_threshold, rule, label, goal, tau)
        new_cap = _fit_one(cap, scores.phi >= new_tau, rule, label, goal, cap_threshold)
        if (new_tau, new_cap) == (tau, cap_threshold):
            break
        tau, cap_threshold = new_tau, new_cap
    decision = dataclasses.replace(base, tau=tau, cap_threshold=cap_threshold)
    _check_reached(decision, scores, goal)
    return decision


def _check_reached(decision: Decision, scores: SampleScores, goal: CalibrationTarget) -> None:
    """One line when the alternating fits end below a `recall>=X` / `precision>=X` target."""
    if goal.minimum is None:
        return
    counts = BinaryCounts.from_decisions(decision.decide(scores.phi, scores.cap_prob), scores.label)
    value = getattr(counts, goal.metric) or 0.0
    if value < goal.minimum:
        raise AutoNADError(f"no thresholds of rule '{decision.rule}' reach {goal} on {scores.label.size} validation "
                           f"samples (best found {goal.metric} {value:.3f})")  # fmt: skip


def _fit_one(score: np.ndarray, other_yes: np.ndarray, rule: str, label: np.ndarray, goal: CalibrationTarget,
             current: float) -> float:  # fmt: skip
    """The threshold on `score` that best meets `goal` with the other score's decisions fixed: under
    "and" rules a sample the other calls clean is clean whatever this score is, under "any" it is
    defective (scores are >= 0, so -1 and max + 1 stand for never and always). Unreachable: unchanged."""
    never, always = -1.0, float(score.max()) + 1.0
    effective = np.where(other_yes, score, never) if rule != "any" else np.where(other_yes, always, score)
    try:
        return max(calibrate_tau(effective, label, goal), 0.0)
    except AutoNADError:
        return current


def calibration_curve(scores: SampleScores, decision: Decision, path: Path) -> Path:
    """PNG of recall and precision on the calibration split as each threshold of `decision` moves (the
    other held at its chosen value), the chosen thresholds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autonad.config import write_atomic

    panels = [("tau", scores.phi, decision.tau, decision.phi)]
    if decision.uses_cap:
        panels.append(("cap_threshold", scores.cap_prob, decision.cap_threshold, "CaP p(defect)"))
    if decision.rule == "cap":
        panels = panels[1:]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for ax, (name, score, chosen, label) in zip(axes[0], panels):
        other = decision.cap_threshold if name == "tau" else decision.tau
        fixed = dataclasses.replace(decision, **({"cap_threshold": other} if name == "tau" else {"tau": other}))
        thresholds, recall, precision = _curve(scores, fixed, name, score)
        ax.plot(thresholds, recall, label="recall", color="#c0392b")
        ax.plot(thresholds, precision, label="precision", color="#2471a3")
        ax.axvline(chosen, color="black", linestyle="--", linewidth=1, label=f"chosen {chosen:.4g}")
        ax.set(xlabel=f"{name} ({label})", ylabel="validation", ylim=(-0.02, 1.02), title=f"rule {decision.rule}")
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def _curve(scores: SampleScores, decision: Decision, name: str, score: np.ndarray):
    thresholds = np.unique(np.concatenate([score, [0.0]]))
    recall, precision = [], []
    for t in thresholds:
        yes = dataclasses.replace(decision, **{name: float(t)}).decide(scores.phi, scores.cap_prob)
        tp, pos = int((yes & scores.label).sum()), int(scores.label.sum())
        recall.append(tp / pos if pos else np.nan)
        precision.append(tp / int(yes.sum()) if yes.any() else np.nan)
    return thresholds, recall, precision


__all__ = ["CURVE_FILE", "Decision", "calibrate", "calibration_curve"]
