"""Search outputs in the run folder: pareto.csv, history.jsonl and pareto.png, each written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from autonad.config import load_yaml_mapping, write_text_atomic
from autonad.errors import AutoNADError, reason
from autonad.figures import new_figure, save_figure
from autonad.search.evolution import Candidate, SearchResult

PARETO_COLUMNS = ("hash", "fitness", "latency_ms", "params", "flops", "score", "arch")


def write_pareto_csv(path: str | os.PathLike, candidates: Sequence[Candidate]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PARETO_COLUMNS)
    for c in candidates:
        writer.writerow([c.hash, _num(c.fitness), _num(c.latency_ms), _num(c.params), _num(c.flops), _num(c.score),
                         c.arch.short()])  # fmt: skip
    write_text_atomic(path, buf.getvalue())


def write_history(path: str | os.PathLike, history: Sequence[Candidate]) -> None:
    write_text_atomic(path, "".join(json.dumps(c.to_dict()) + "\n" for c in history))


def plot_pareto(
    path: str | os.PathLike,
    history: Sequence[Candidate],
    pareto: Sequence[Candidate],
    best: Candidate,
    fitness_label: str = "fitness",
) -> None:
    """Every evaluated candidate as a point (fitness vs latency), the Pareto front as a line, the best
    marked. Without latencies, fitness is plotted against the evaluation order instead."""
    timed = all(c.latency_ms is not None for c in history)
    order = {c.hash: i for i, c in enumerate(history)}

    def x(c: Candidate) -> float:
        return c.latency_ms if timed else order[c.hash]  # type: ignore[return-value]

    fig = new_figure((7, 4.5))
    ax = fig.add_subplot()
    ax.scatter([x(c) for c in history], [c.fitness for c in history], s=10, alpha=0.45, label="evaluated")
    if timed:
        ax.plot([x(c) for c in pareto], [c.fitness for c in pareto], "o-", color="tab:orange", ms=4,
                label="Pareto front")  # fmt: skip
    ax.scatter([x(best)], [best.fitness], marker="*", s=220, color="tab:red", zorder=3, label=f"best ({best.hash})")
    ax.set_xlabel("predicted latency (ms)" if timed else "evaluation")
    ax.set_ylabel(fitness_label)
    ax.set_title(f"evolution search: {len(history)} candidates")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    save_figure(fig, path)


def write_outputs(run_dir: str | os.PathLike, result: SearchResult, fitness_label: str = "fitness") -> dict[str, Path]:
    """pareto.csv, history.jsonl and pareto.png in `run_dir`; returns their paths by name."""
    run_dir = Path(run_dir)
    paths = {name: run_dir / name for name in ("pareto.csv", "history.jsonl", "pareto.png")}
    write_pareto_csv(paths["pareto.csv"], result.pareto)
    write_history(paths["history.jsonl"], result.history)
    plot_pareto(paths["pareto.png"], result.history, result.pareto, result.best, fitness_label)
    return paths


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def search_supernet(run_dir: str | os.PathLike) -> Path | None:
    """The supernet checkpoint of a search run folder (its summary.yaml), if it names one that exists.
    Older runs wrote the path relative to where the search ran: tried from here, then from each folder
    above the run."""
    summary = Path(run_dir) / "summary.yaml"
    path = load_yaml_mapping(summary).get("supernet") if summary.is_file() else None
    if not path:
        return None
    bases = [Path.cwd(), *summary.resolve().parent.parents]
    return next((base / path for base in bases if (base / path).is_file()), None)


def load_history(run_dir: str | os.PathLike) -> list[Candidate]:
    """Every candidate a search run evaluated (its history.jsonl), in order; one line if it has none."""
    path = Path(run_dir) / "history.jsonl"
    if not path.is_file():
        raise AutoNADError(f"{run_dir}: not a search run folder (no history.jsonl)")
    try:
        return [Candidate.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    except (ValueError, TypeError, KeyError) as e:
        raise AutoNADError(f"{path}: damaged search history ({reason(e, 120)})") from None


def arch_family(arch) -> tuple:
    """What makes two archs different experts: their block operators and stage widths."""
    return tuple((st.width, tuple(b.op for b in st.blocks)) for st in arch.stages)


def pick_members(
    history: Sequence[Candidate], k: int, max_latency_ms: float | None = None, parallel: bool = False
) -> list[Candidate]:
    """K diverse archs for an ensemble (paper 004's experts): the Pareto front by fitness first, then
    the other candidates by fitness, each of another operator/width family than those picked, within
    `max_latency_ms` for the members' sum (run one after another) or, `parallel`, their max."""
    from autonad.search.evolution import pareto_front

    front = sorted(pareto_front(history), key=lambda c: -c.fitness)
    rest = sorted((c for c in history if c not in front), key=lambda c: -c.fitness)
    picked: list[Candidate] = []
    floor = min((c.latency_ms or 0.0 for c in history), default=0.0)  # what each member still to pick costs at least
    for c in [*front, *rest]:
        if any(arch_family(c.arch) == arch_family(p.arch) for p in picked):
            continue
        latencies = [p.latency_ms or 0.0 for p in [*picked, c]]
        # a member that leaves no room for the others is passed over, however fit (a sum's budget)
        cost = max(latencies) if parallel else sum(latencies) + (k - len(latencies)) * floor
        if max_latency_ms is not None and cost > max_latency_ms:
            continue
        picked.append(c)
        if len(picked) == k:
            return picked
    budget = f" within {max_latency_ms:g} ms" if max_latency_ms is not None else ""
    raise AutoNADError(f"the search evaluated only {len(picked)} archs of different operator/width families"
                       f"{budget}, {k} asked for (lower --k or raise --max-latency-ms)")  # fmt: skip
