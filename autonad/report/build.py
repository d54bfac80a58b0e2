"""report.html: one self-contained page per run folder (search or retrain), rendered with Jinja2 from
the run's own files; every picture is inlined as a data URI, so the page needs no network and no
other file. A section whose data the run lacks says so instead of disappearing."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autonad import __version__
from autonad.config import load_yaml, write_text_atomic
from autonad.data import SegSource
from autonad.errors import AutoNADError
from autonad.export.inference import ExportedModel
from autonad.metrics import MetricsReport
from autonad.report import figures
from autonad.report.evaluation import EVALUATION_DIR, FAILURE_KINDS, evaluate_for_report, failure_rates, load_evaluation
from autonad.space import Arch

REPORT_NAME = "report.html"
EXPORT_FILES = ("model.ts", "model.onnx", "model.pt", "model.json", "best_arch.yaml", "summary.yaml", "metrics.json")
SEARCH_SETTINGS = ("selection", "population", "generations", "parents", "fitness", "tolerance", "latency_weight",
                   "latency_share", "max_latency_ms", "val_images", "seed")  # fmt: skip
SAMPLE_METRICS = (("Sample_mIoU", "sample_miou"), ("Seg_Accuracy", "seg_accuracy"), ("Seg_Recall", "seg_recall"),
                  ("Seg_Precision", "seg_precision"), ("Seg_F1", "seg_f1"))  # fmt: skip


def write_report(run_dir: str | Path) -> Path:
    """Render `<run_dir>/report.html` from the run's files; returns its path."""
    run_dir = Path(run_dir)
    context = run_context(run_dir)
    path = run_dir / REPORT_NAME
    write_text_atomic(path, render(context))
    return path


def report_run(
    run_dir: str | Path, model: ExportedModel, source: SegSource, report: MetricsReport | None = None
) -> Path:
    """Evaluate `model` on the run's test split (its validation split when there is no test split;
    `report`: the metrics of that split, already computed), then write report.html; returns its path."""
    split = "test" if source.splits.get("test") else "val"
    evaluate_for_report(model, source, run_dir, split, report)
    return write_report(run_dir)


def run_split_file(run_dir: str | Path) -> Path | None:
    """The split.json a run trained (and its search validated) on: its own, else its supernet's."""
    run_dir = Path(run_dir)
    if (run_dir / "split.json").is_file():
        return run_dir / "split.json"
    summary = run_dir / "summary.yaml"
    supernet = _yaml(summary).get("supernet") if summary.is_file() else None
    if supernet and (Path(supernet).parent / "split.json").is_file():
        return Path(supernet).parent / "split.json"
    return None


def render(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("autonad.report", "templates"),
        autoescape=jinja2.select_autoescape(("html", "j2")),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f}"
    env.filters["num"] = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    env.filters["scaled"] = lambda v, unit: "-" if v is None else f"{v / unit:.2f}"
    return env.get_template("report.html.j2").render(**context)


def run_kind(run_dir: Path) -> str:
    if (run_dir / "summary.yaml").is_file():
        return "search"
    if (run_dir / "run.yaml").is_file() and (run_dir / "best.pt").is_file():
        return "retrain"
    if (run_dir / EVALUATION_DIR).is_dir():
        return "evaluation"
    raise AutoNADError(
        f"{run_dir}: not a search, retrain or evaluation folder (no summary.yaml, run.yaml or evaluation/)"
    )


def run_context(run_dir: Path) -> dict[str, Any]:
    kind = run_kind(run_dir)
    builders: dict[str, Callable[[Path], dict[str, Any]]] = {
        "search": _search_context, "retrain": _retrain_context, "evaluation": _evaluation_context}  # fmt: skip
    context = {
        "kind": kind,
        "run": str(run_dir.resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "dataset": None, "recipe": None, "device": None, "curves": [], "search": None, "pareto": None,
        "prior": None, "arch": None,
    }  # fmt: skip
    context.update(builders[kind](run_dir))
    context.update(_evaluation_sections(run_dir))
    context["files"] = file_rows(run_dir)
    return context


# -- per kind ---------------------------------------------------------------------------------
def _search_context(run_dir: Path) -> dict[str, Any]:
    summary = _yaml(run_dir / "summary.yaml")
    supernet_dir = Path(summary["supernet"]).parent if summary.get("supernet") else None
    model = _json(run_dir / "model.json") or {}
    best = summary.get("best", {})
    search = summary.get("search", {})
    out: dict[str, Any] = {
        "title": f"search: {model.get('dataset', '?')} for {summary.get('hw', {}).get('hw', '?')}",
        "device": _device(summary.get("hw", {}), model),
        "recipe": _recipe(supernet_dir, "supernet training", run_dir),
        "curves": [],
        "search": {
            "why": summary.get("why"),
            "best": best,
            "settings": {k: search.get(k) for k in SEARCH_SETTINGS},
            "progress": _history_picture(run_dir, search.get("fitness", "fitness")),
        },
        "pareto": _inline_png(run_dir / "pareto.png"),
        "prior": _inline_png(run_dir / "latency_prior.png"),
        "arch": _arch(Arch.load(run_dir / "best_arch.yaml")) if (run_dir / "best_arch.yaml").is_file() else None,
    }
    if supernet_dir is not None:
        out["dataset"] = _dataset(supernet_dir)
        out["curves"].append(_curves(supernet_dir, "supernet training"))
    for ft in sorted(run_dir.glob("finetune-*/history.jsonl")):
        out["curves"].append(_curves(ft.parent, f"fine-tuning ({ft.parent.name})"))
    out["curves"] = [c for c in out["curves"] if c is not None]
    return out


def _retrain_context(run_dir: Path) -> dict[str, Any]:
    run = _yaml(run_dir / "run.yaml")
    model = _json(run_dir / "model.json") or {}
    arch = Arch.from_dict(run["arch"]) if run.get("arch") else None
    return {
        "title": f"retrain: arch {run.get('arch_hash', '?')[:8]} on {run.get('dataset', {}).get('name', '?')}",
        "dataset": _dataset(run_dir),
        "recipe": _recipe(run_dir, "retraining", run_dir),
        "device": _device({}, model) if model.get("hw") else None,
        "curves": [c for c in [_curves(run_dir, "retraining")] if c is not None],
        "arch": _arch(arch) if arch else None,
    }


def _evaluation_context(run_dir: Path) -> dict[str, Any]:
    record = load_evaluation(run_dir) or {}
    return {"title": f"evaluation: {Path(record.get('model', '?')).name} on {record.get('dataset', '?')}"}


# -- sections ---------------------------------------------------------------------------------
def _dataset(train_dir: Path) -> dict[str, Any] | None:
    run = _yaml(train_dir / "run.yaml") if (train_dir / "run.yaml").is_file() else {}
    split = _json(train_dir / "split.json") or {}
    data = run.get("dataset") or {}
    if not data and not split:
        return None
    return {"name": data.get("name") or split.get("dataset"), "root": data.get("root") or split.get("root"),
            "classes": data.get("classes", []), "split_origin": data.get("split") or split.get("origin"),
            "counts": split.get("counts", {}), "normalisation": run.get("normalisation")}  # fmt: skip


def _recipe(train_dir: Path | None, stage: str, run_dir: Path) -> dict[str, Any] | None:
    run = _yaml(train_dir / "run.yaml") if train_dir is not None and (train_dir / "run.yaml").is_file() else {}
    recipe = run.get("recipe") or {}
    stages = []
    if run:
        stages.append({"stage": stage, **(run.get("budget") or {}), "device": run.get("device"),
                       "started": run.get("started")})  # fmt: skip
    for ft in sorted(run_dir.glob("finetune-*/run.yaml")) if stage != "retraining" else []:
        info = _yaml(ft)
        stages.append({"stage": f"fine-tuning ({ft.parent.name})", **(info.get("budget") or {}),
                       "device": info.get("device"), "started": info.get("started")})  # fmt: skip
    if not recipe and not stages:
        return None
    transform = recipe.get("transform") or {}
    return {"name": recipe.get("name"), "description": recipe.get("description"), "supernet": recipe.get("supernet"),
            "input_size": transform.get("size"), "scale": transform.get("scale"), "stages": stages}  # fmt: skip


def _device(hw: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    return {"name": hw.get("hw") or model.get("hw"), "table": hw.get("table"),
            "provenance": hw.get("provenance") or model.get("latency_provenance"),
            "runtime": model.get("latency_runtime"), "latency_ms": model.get("latency_ms")}  # fmt: skip


def _curves(train_dir: Path, title: str) -> dict[str, Any] | None:
    history = _jsonl(train_dir / "history.jsonl")
    if not history:
        return None
    return {"title": title, "picture": _b64(figures.training_curves(history, title)), "epochs": len(history),
            "steps": history[-1].get("step")}  # fmt: skip


def _history_picture(run_dir: Path, fitness_label: str) -> str | None:
    candidates = _jsonl(run_dir / "history.jsonl")
    return _b64(figures.search_progress(candidates, fitness_label)) if candidates else None


def _arch(arch: Arch) -> dict[str, Any]:
    return {"picture": _b64(figures.arch_diagram(arch)), "hash": arch.hash, "short": arch.short()}


def _evaluation_sections(run_dir: Path) -> dict[str, Any]:
    record = load_evaluation(run_dir)
    if record is None:
        return {"evaluation": None}
    m = record["metrics"]
    classes = m.get("class_names") or list(m.get("per_class_iou", {}))
    per_class = [{"name": c, "iou": m.get("per_class_iou", {}).get(c), "f1": m.get("per_class_f1", {}).get(c),
                  "sample_iou": (m.get("per_class_sample_iou") or {}).get(c)} for c in classes]  # fmt: skip
    failures = [_failures(run_dir, kind, items) for kind, items in record["failures"].items()]
    return {"evaluation": {
        "split": record["split"], "dataset": record["dataset"], "decision": record["decision"],
        "headline": [("mIoU", m.get("miou")), ("mIoU (defects)", m.get("miou_fg")), ("mF1", m.get("mf1")),
                     ("pooled defect IoU", m.get("pooled_iou"))],
        "samples": [(name, m.get(key)) for name, key in SAMPLE_METRICS], "per_class": per_class,
        "counts": failure_rates(record["images"]), "num_samples": m.get("num_samples"),
        "confusion": _b64(figures.confusion_matrix(m["confusion"], classes)) if m.get("confusion") else None,
        "failures": failures,
    }}  # fmt: skip


def _failures(run_dir: Path, kind: str, items: list[dict[str, str]]) -> dict[str, Any]:
    pictures = [{"id": f["id"], "picture": _inline_png(run_dir / EVALUATION_DIR / f["picture"])} for f in items]
    return {"kind": FAILURE_KINDS[kind], "pictures": pictures}


def file_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The exported and summary files with their sizes and SHA-256 checksums."""
    rows = []
    for name in EXPORT_FILES:
        path = run_dir / name
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            rows.append({"name": name, "bytes": path.stat().st_size, "sha256": digest})
    return rows


# -- reading run files ------------------------------------------------------------------------
def _yaml(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise AutoNADError(f"{path}: expected a mapping, found {type(data).__name__}")
    return data


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AutoNADError(f"{path}: not readable JSON ({e.__class__.__name__})") from None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AutoNADError(f"{path}: not readable JSON lines ({e.__class__.__name__})") from None


def _b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _inline_png(path: Path) -> str | None:
    return _b64(path.read_bytes()) if path.is_file() else None
