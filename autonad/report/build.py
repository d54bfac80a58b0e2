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
from autonad.config import load_yaml_mapping, write_text_atomic
from autonad.data import SegSource
from autonad.decision import CURVE_FILE, Decision
from autonad.errors import AutoNADError
from autonad.export.inference import ExportedModel
from autonad.report import figures
from autonad.report.evaluation import EVALUATION_DIR, FAILURE_KINDS, evaluate_for_report, failure_rates, load_evaluation
from autonad.search.outputs import search_supernet
from autonad.space import Arch
from autonad.tensorboard import LOG_DIR

REPORT_NAME = "report.html"
MODEL_FILES = ("model.ts", "model.onnx", "model.pt")
EXPORT_FILES = ("model.ts", "model.onnx", "model.pt", "model.json", "best_arch.yaml", "summary.yaml", "metrics.json")
SEARCH_SETTINGS = ("selection", "population", "generations", "parents", "fitness", "tolerance", "latency_weight",
                   "latency_share", "max_latency_ms", "val_images", "seed")  # fmt: skip


def write_report(run_dir: str | Path, split: str | None = None) -> Path:
    """Render `<run_dir>/report.html` from the run's files (its evaluation of `split`; default: of
    test, else val); returns its path."""
    run_dir = Path(run_dir)
    context = run_context(run_dir, split)
    path = run_dir / REPORT_NAME
    write_text_atomic(path, render(context))
    return path


def report_run(run_dir: str | Path, model: ExportedModel, source: SegSource) -> Path:
    """Evaluate `model` on the run's test split, then write report.html; returns its path."""
    evaluate_for_report(model, source, run_dir, "test")
    return write_report(run_dir, "test")


def report_search_run(run_dir: str | Path, model_file: Path, source: SegSource) -> Path:
    """A finished search: its exported model on the test split of the split its supernet trained on,
    then report.html."""
    split = run_split_file(run_dir)
    if split is not None:
        source.use_split(split)
    return report_run(run_dir, ExportedModel.load(model_file), source)


def reevaluate_run(run_dir: Path, dataset: str, data_root: str | None = None, skip_bad: bool = False) -> Path:
    """`autonad report RUN --dataset D`: the run's exported model evaluated again on the test split of the
    split (and seed) it was trained on, then report.html."""
    from autonad.data import open_dataset, read_split

    split = run_split_file(run_dir)
    seed = int(read_split(split).get("seed") or 0) if split is not None else 0
    source = open_dataset(dataset, data_root, seed=seed, split_file=split, skip_bad=skip_bad)
    return report_run(run_dir, ExportedModel.load(run_model_file(run_dir)), source)


def run_model_file(run_dir: Path) -> Path:
    """The exported model of a run folder (TorchScript first)."""
    found = next((run_dir / name for name in MODEL_FILES if (run_dir / name).is_file()), None)
    if found is None:
        raise AutoNADError(f"{run_dir}: no exported model ({', '.join(MODEL_FILES)}) to evaluate")
    return found


def run_split_file(run_dir: str | Path) -> Path | None:
    """The split.json a run trained (and its search validated) on: its own, else its supernet's."""
    run_dir = Path(run_dir)
    if (run_dir / "split.json").is_file():
        return run_dir / "split.json"
    supernet = search_supernet(run_dir)
    if supernet is not None and (supernet.parent / "split.json").is_file():
        return supernet.parent / "split.json"
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
    try:
        return env.get_template("report.html.j2").render(**context)
    except jinja2.UndefinedError as e:  # a run folder written by an older version, or edited
        raise AutoNADError(f"{context['run']}: its run files lack what the report shows ({e.message})") from None


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


def run_context(run_dir: Path, split: str | None = None) -> dict[str, Any]:
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
    context.update(_evaluation_sections(run_dir, split))
    context["files"] = file_rows(run_dir)
    context["tensorboard"] = [
        str(d.parent.resolve()) for d in _tensorboard_dirs(run_dir, context.pop("train_dirs", []))
    ]
    return context


def _tensorboard_dirs(run_dir: Path, train_dirs: list[Path]) -> list[Path]:
    return [d / LOG_DIR for d in [run_dir, *train_dirs] if (d / LOG_DIR).is_dir()]


# -- per kind ---------------------------------------------------------------------------------
def _search_context(run_dir: Path) -> dict[str, Any]:
    summary = load_yaml_mapping(run_dir / "summary.yaml")
    supernet = search_supernet(run_dir)
    supernet_dir = supernet.parent if supernet is not None else None
    model = _json(run_dir / "model.json") or {}
    best = summary.get("best") or {}
    search = summary.get("search") or {}
    out: dict[str, Any] = {
        "title": f"search: {model.get('dataset', '?')} for {summary.get('hw', {}).get('hw', '?')}",
        "device": _device(summary.get("hw", {}), model),
        "recipe": _recipe(supernet_dir, "supernet training", run_dir),
        "curves": [],
        "search": None
        if not best
        else {
            "why": summary.get("why"),
            "best": {"hash": "", "metrics": {}, **best},
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
    finetunes = sorted(ft.parent for ft in run_dir.glob("finetune-*/history.jsonl"))
    out["curves"] += [_curves(ft, f"fine-tuning ({ft.name})") for ft in finetunes]
    out["curves"] = [c for c in out["curves"] if c is not None]
    out["train_dirs"] = [d for d in [supernet_dir, *finetunes] if d is not None]
    return out


def _retrain_context(run_dir: Path) -> dict[str, Any]:
    run = load_yaml_mapping(run_dir / "run.yaml")
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
    record = load_evaluation(run_dir) or {}  # the title only; the sections show the split asked for
    return {"title": f"evaluation: {Path(record.get('model', '?')).name} on {record.get('dataset', '?')}"}


# -- sections ---------------------------------------------------------------------------------
def _dataset(train_dir: Path) -> dict[str, Any] | None:
    run = _run_yaml(train_dir)
    split = _json(train_dir / "split.json") or {}
    data = run.get("dataset") or {}
    if not data and not split:
        return None
    return {"name": data.get("name") or split.get("dataset"), "root": data.get("root") or split.get("root"),
            "classes": data.get("classes", []), "split_origin": data.get("split") or split.get("origin"),
            "counts": split.get("counts", {}), "normalisation": run.get("normalisation")}  # fmt: skip


def _recipe(train_dir: Path | None, stage: str, run_dir: Path) -> dict[str, Any] | None:
    run = _run_yaml(train_dir) if train_dir is not None else {}
    recipe = run.get("recipe") or {}
    stages = []
    if run:
        stages.append({"stage": stage, **(run.get("budget") or {}), "device": run.get("device"),
                       "started": run.get("started")})  # fmt: skip
    for ft in sorted(run_dir.glob("finetune-*/run.yaml")) if stage != "retraining" else []:
        info = load_yaml_mapping(ft)
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


def _evaluation_sections(run_dir: Path, split: str | None) -> dict[str, Any]:
    record = load_evaluation(run_dir, split)
    if record is None:
        return {"evaluation": None}
    m = record["metrics"]
    classes = m.get("class_names") or list(m.get("per_class_iou", {}))
    per_class = [{"name": c, "iou": m.get("per_class_iou", {}).get(c), "f1": m.get("per_class_f1", {}).get(c),
                  "sample_iou": (m.get("per_class_sample_iou") or {}).get(c)} for c in classes]  # fmt: skip
    failures = [_failures(run_dir, kind, items) for kind, items in record["failures"].items()]
    return {"evaluation": {
        "split": record["split"], "dataset": record["dataset"], "decision": record["decision"],
        "decision_text": Decision.from_dict(record["decision"], "evaluation decision").describe(),
        "headline": [*record["rows"][:3], ("pooled defect IoU", m.get("pooled_iou")), *record["rows"][3:]],
        "per_class": per_class,
        "counts": failure_rates(record["images"]), "num_samples": m.get("num_samples"),
        "confusion": _b64(figures.confusion_matrix(m["confusion"], classes)) if m.get("confusion") else None,
        "failures": failures,
        "calibration": _inline_png(run_dir / CURVE_FILE),
    }}  # fmt: skip


def _failures(run_dir: Path, kind: str, items: list[dict[str, str]]) -> dict[str, Any]:
    pictures = [{"id": f.get("id"), "picture": _inline_png(run_dir / EVALUATION_DIR / str(f.get("picture")))}
                for f in items]  # fmt: skip
    return {"kind": FAILURE_KINDS.get(kind, kind), "pictures": [p for p in pictures if p["picture"]]}


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
def _run_yaml(folder: Path) -> dict[str, Any]:
    """A training folder's run.yaml ({} when it has none)."""
    return load_yaml_mapping(folder / "run.yaml") if (folder / "run.yaml").is_file() else {}


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
