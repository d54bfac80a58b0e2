"""Ensembles of retrained subnets (paper 004's experts): one model that averages its members.

    members = [load_trained_subnet(run / "best.pt") for run in runs]
    weights, table = tune_weights(members, source)           # on the validation split
    net = EnsembleNet([m.net for m in members], weights)     # exported like any model

The ensemble's `seg` output is the log of the weighted mean of its members' class probabilities
(so softmax(seg) is that mean, and every metric and decision reads it as it reads one model's
logits); CaP's `cap` (presence) and `cls` (multi-label class stage), where every member has that
output, are the logits of the weighted means of their sigmoid probabilities. Members must share
classes, normalisation and input size.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from autonad.data import SegmentationDataset, SegSource, Transform, TransformConfig, eval_loader
from autonad.errors import AutoNADError
from autonad.export import output_names
from autonad.metrics import SegMetrics, decode_labels, pixel_cut_tensor
from autonad.ui import progress

WEIGHT_STEP = 0.1  # the grid over the weight simplex that tune_weights searches
FIT_ROUNDS = 3  # weights, then thresholds, then weights under those thresholds ... (paper 004)
MAX_MEMBERS = 6  # the grid has C(9, k-1) points: 126 at 5 members, 126 at 6
EPS = 1e-7  # probabilities are clamped here before log/logit
SIGMOID_OUTPUTS = ("cap", "cls")  # CaP's presence and class-stage logits, combined as probabilities


class EnsembleNet(nn.Module):
    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], metadata: dict[str, str]):
        super().__init__()
        if len(members) != len(weights) or len(members) < 2:
            raise AutoNADError(f"an ensemble needs at least 2 members with one weight each, got {len(members)} "
                               f"members and {len(weights)} weights")  # fmt: skip
        total = float(sum(weights))
        if total <= 0 or min(weights) < 0:
            raise AutoNADError(f"ensemble weights must be >= 0 with a positive sum, got {list(weights)}")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor([w / total for w in weights], dtype=torch.float32))
        shared = set.intersection(*(set(output_names(getattr(m, "metadata", {}))) for m in members))
        self.output_names = ["seg", *(name for name in SIGMOID_OUTPUTS if name in shared)]  # never empty: TorchScript
        self.with_cap = "cap" in self.output_names
        self.metadata = metadata

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        probs = torch.zeros(0, device=x.device)  # replaced by the first member's (sums start on x's device)
        means: dict[str, Tensor] = {}
        for i, member in enumerate(self.members):
            out = member(x)
            w = self.weights[i]
            p = w * out["seg"].float().softmax(dim=1)
            probs = p if i == 0 else probs + p
            for name in self.output_names[1:]:
                q = w * torch.sigmoid(out[name].float())
                means[name] = q if i == 0 else means[name] + q
        result = {"seg": probs.clamp_min(1e-7).log()}  # EPS (TorchScript reads no module globals)
        for name in self.output_names[1:]:
            q = means[name].clamp(1e-7, 1 - 1e-7)
            result[name] = torch.log(q) - torch.log1p(-q)
        return result


def check_members(infos: Sequence[dict[str, Any]], names: Sequence[str]) -> None:
    """One line naming the first member whose classes, normalisation or input size differ from the first's."""
    for key in ("classes", "normalisation", "input_size", "scale"):
        for info, name in zip(infos[1:], names[1:]):
            if info.get(key) != infos[0].get(key):
                raise AutoNADError(f"ensemble member {name} has {key} {info.get(key)}, member {names[0]} has "
                                   f"{infos[0].get(key)}: members must be retrained alike")  # fmt: skip


def weight_grid(k: int, step: float = WEIGHT_STEP) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with entries in multiples of `step` (each member >= one step)."""
    n = round(1 / step)
    if not 2 <= k <= min(MAX_MEMBERS, n):
        raise AutoNADError(f"an ensemble takes 2 to {min(MAX_MEMBERS, n)} members, got {k}")
    return [tuple(c / n for c in combo) for combo in itertools.product(range(1, n), repeat=k) if sum(combo) == n]


def tune_weights(
    members: Sequence[nn.Module], source: SegSource, transform: TransformConfig, split: str = "val",
    metric: str = "miou", batch: int = 4, pixel_cuts: Sequence[float | None] | None = None,
) -> tuple[tuple[float, ...], list[dict[str, Any]]]:  # fmt: skip
    """The grid weights (`weight_grid`) whose weighted ensemble scores best by `metric` on `split`
    (one pass: each member runs once per batch, every weight vector is scored from those outputs),
    its masks decoded with the decision's `pixel_cuts` (per defect class; None: the argmax); and each
    vector's score, best first. Ties keep the most even weights."""
    grid = weight_grid(len(members))
    names = list(source.classes)
    cuts = pixel_cut_tensor(pixel_cuts)
    scores = [SegMetrics(len(names), class_names=names) for _ in grid]
    loader = eval_loader(SegmentationDataset(source, split, Transform(transform, train=False)), batch)
    with torch.inference_mode(), progress() as bar:
        for images, masks in bar.track(loader, description=f"ensemble weights on {source.name} {split}"):
            probs = [m(images)["seg"].float().softmax(dim=1) for m in members]
            for weights, metrics in zip(grid, scores):
                labels = decode_labels(sum(w * p for w, p in zip(weights, probs)), cuts)  # what mIoU needs
                metrics.update(labels, masks)
    table = [{"weights": list(w), metric: getattr(m.compute(), metric)} for w, m in zip(grid, scores)]
    even = [max(w) - min(w) for w in grid]
    order = sorted(range(len(grid)), key=lambda i: (-(table[i][metric] or 0.0), even[i]))
    return grid[order[0]], [table[i] for i in order]


def build_ensemble(
    runs: Sequence[Path],
    source: SegSource,
    out_dir: Path,
    formats: Sequence[str] = ("torchscript", "onnx"),
    calibrate: str | None = None,
    rule: str = "seg",
    predictor=None,
    device: torch.device | str = "cpu",
    per_class: bool = False,
) -> dict[str, Any]:
    """Retrained runs -> one exported ensemble in `out_dir`: weights tuned on validation and, when
    `calibrate` names a target, the decision calibrated there, the two fitted alternately (`_fit`;
    `per_class`: each class's own thresholds too), every metric on test, model files checked against
    the eager ensemble, model.json with the members, their weights and (with a `LatencyPredictor`) the
    summed predicted latency of the members on the target table. It computes on `device`; the
    exported files are the CPU float32 model."""
    from autonad.export import export_model
    from autonad.export.inference import ExportedModel
    from autonad.report import evaluate_for_report, write_report
    from autonad.train.subnet import load_trained_subnet

    members = [load_trained_subnet(Path(run) / "best.pt") for run in runs]
    infos = [{**m.net.metadata, **m.export_info()} for m in members]
    check_members(infos, [str(run) for run in runs])
    first = ExportedModel(members[0].net, infos[0], Path(runs[0]) / "best.pt")
    first.check_classes(source)
    meta = {k: v for k, v in infos[0].items() if k in ENSEMBLE_KEYS}
    out_dir.mkdir(parents=True, exist_ok=True)
    fit = _fit([m.net for m in members], meta, source, first.transform.config, out_dir,
               (calibrate, rule, per_class), torch.device(device))  # fmt: skip
    member_rows = [{"run": str(Path(run).resolve()), "arch_hash": m.arch.hash, "weight": w,
                    **({"latency_ms": predictor.predict(m.arch)} if predictor else {})}
                   for run, m, w in zip(runs, members, fit.weights)]  # fmt: skip
    meta.update(ensemble={"members": member_rows, "tuned_on": f"{source.name} val", "weight_table": fit.table[:10],
                          **({"fit_rounds": fit.rounds} if calibrate else {})})  # fmt: skip
    if predictor is not None:  # members run one after the other
        meta.update(predictor.metadata(sum(r["latency_ms"] for r in member_rows)))
    if fit.decision is not None:
        meta["decision"] = fit.decision.to_dict()
    report = evaluate_for_report(fit.model, source, out_dir, "test")
    meta["metrics"] = {"split": "test", **report.to_dict()}
    files = export_model(fit.net, out_dir, tuple(meta["input_size"]), meta, formats)
    return {"meta": meta, "report": report, "files": files, "page": write_report(out_dir, "test")}


@dataclass
class _Fitted:
    weights: tuple[float, ...]
    table: list[dict[str, Any]]  # the weight vectors' validation scores, best first (under the last cuts tuned with)
    decision: Any  # a Decision, or None uncalibrated
    rounds: list[dict[str, Any]]  # per round: weights, their validation mIoU, the pixel thresholds fitted
    net: EnsembleNet  # what is exported (`export_model` copies it to the CPU)
    model: Any  # the ExportedModel computing on the device


def _fit(
    members: list[nn.Module], meta: dict[str, Any], source: SegSource, transform: TransformConfig, out_dir: Path,
    calibration: tuple[str | None, str, bool], device: torch.device,
) -> _Fitted:  # fmt: skip
    """Paper 004's alternating fit: the weights for the validation mIoU, then the decision's thresholds
    with the weights fixed, then the weights again under the fitted pixel thresholds, ... until the
    weights stay (at most FIT_ROUNDS). Without pixel thresholds (one tau: the masks are the argmax)
    the weights do not depend on the decision, and one round is the fit. `calibration`: the target
    (None: no decision), the rule and whether per class."""
    from autonad.decision import CURVE_FILE
    from autonad.export import on_device
    from autonad.export.inference import ExportedModel, calibrate_decision

    calibrate, rule, per_class = calibration
    nets = [on_device(m, device) for m in members]
    fit = _Fitted((), [], None, [], None, None)
    cuts = None
    for _ in range(FIT_ROUNDS):
        weights, fit.table = tune_weights(nets, source, transform, pixel_cuts=cuts)
        if weights == fit.weights:
            break
        fit.weights = weights
        fit.net = EnsembleNet(members, weights, {})
        meta["outputs"] = ",".join(fit.net.output_names)
        fit.net.metadata = {"in_channels": meta["in_channels"], "outputs": meta["outputs"]}
        fit.model = ExportedModel(on_device(fit.net, device), meta, out_dir / "ensemble")
        if not calibrate:
            break
        fit.decision = calibrate_decision(
            fit.model, source, calibrate, rule, curve=out_dir / CURVE_FILE, per_class=per_class
        )
        cuts = fit.decision.pixel_cuts(fit.model.classes)
        fit.rounds.append({"weights": list(weights), "val_miou": fit.table[0]["miou"],
                           "pixel_thresholds": dict(fit.decision.pixel_thresholds)})  # fmt: skip
        if cuts is None:
            break
    return fit


# what of a member's metadata the ensemble's model.json carries (the rest is per member)
ENSEMBLE_KEYS = ("classes", "normalisation", "input_size", "scale", "pad_to", "in_channels", "num_classes")


__all__ = ["EnsembleNet", "build_ensemble", "check_members", "tune_weights", "weight_grid"]
