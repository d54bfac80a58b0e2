"""The report's own pictures, drawn from run files: training curves, search progress per generation,
the arch as a diagram and the confusion matrix. Each returns PNG bytes (the report inlines them)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autonad.figures import new_figure
from autonad.space import EDGE_NAMES, Arch, block_operator, block_operators


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def training_curves(history: Sequence[Mapping[str, Any]], title: str) -> bytes:
    """Mean training loss per epoch (left) and validation mIoU (right; one line per validated subnet)."""
    fig = new_figure((9, 3.4))
    loss_ax, val_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    steps = [h["step"] for h in history if "loss" in h]
    loss_ax.plot(steps, [h["loss"] for h in history if "loss" in h], color="tab:blue")
    loss_ax.set(xlabel="optimiser step", ylabel="training loss (epoch mean)", title=title)
    for name, points in validation_series(history).items():
        val_ax.plot(*zip(*points), "o-", ms=3, label=name)
    val_ax.set(xlabel="optimiser step", ylabel="validation mIoU (%)", title="validation")
    if val_ax.get_legend_handles_labels()[0]:
        val_ax.legend(fontsize="small")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)


def validation_series(history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """(step, mIoU %) per validated network: "model" for a single one, else the supernet's subnet names."""
    series: dict[str, list[tuple[int, float]]] = {}
    for h in history:
        val = h.get("val") or {}
        nets = {"model": val} if "miou" in val else {k: v for k, v in val.items() if isinstance(v, Mapping)}
        for name, metrics in nets.items():
            if metrics.get("miou") is not None:
                series.setdefault(name, []).append((h["step"], 100 * metrics["miou"]))
    return series


def search_progress(candidates: Sequence[Mapping[str, Any]], fitness_label: str) -> bytes:
    """Per generation: its best and mean fitness and the best so far."""
    gens = sorted({c["generation"] for c in candidates})
    per = {g: [c["fitness"] for c in candidates if c["generation"] == g] for g in gens}
    best = [max(per[g]) for g in gens]
    fig = new_figure((6.5, 3.4))
    ax = fig.add_subplot()
    ax.plot(gens, best, "o-", label="best of the generation")
    ax.plot(gens, [float(np.mean(per[g])) for g in gens], "s--", ms=3, label="mean of the new evaluations")
    ax.plot(gens, np.maximum.accumulate(best), color="tab:red", label="best so far")
    ax.set_xticks(gens)
    ax.set(xlabel="generation", ylabel=fitness_label, title=f"search progress ({len(candidates)} evaluations)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return png(fig)


def arch_diagram(arch: Arch) -> bytes:
    """Stages left to right, one box per block (colour = operator, label = kernel and FFN ratio), then
    the MFAM decoder with its pool sizes and edge operators."""
    depth = max(s.depth for s in arch.stages)
    fig = new_figure((2.0 * (len(arch.stages) + 1.6), 0.62 * depth + 1.6))
    ax = fig.add_subplot()
    for x, stage in enumerate(arch.stages):
        ax.text(x + 0.4, depth + 0.35, f"stage {x + 1}\nwidth {stage.width}", ha="center", fontsize=8)
        for y, block in enumerate(stage.blocks):
            top = depth - y - 1
            op = block_operator(block.op)
            ax.add_patch(_box(x, top, op.colour))
            label = op.label(block.kernel)
            ax.text(x + 0.4, top + 0.4, f"{label}\nFFN x{block.ffn_ratio:g}", ha="center", va="center", fontsize=7,
                    color="white")  # fmt: skip
        if x:
            ax.annotate("", (x, depth - 0.5), (x - 0.2, depth - 0.5), arrowprops={"arrowstyle": "->"})
    dec = arch.decoder
    x = len(arch.stages) + 0.1
    edges = "\n".join(f"{n}: {op}" for n, op in zip(EDGE_NAMES, dec.edges))
    head = f"MFAM width {dec.width}\nPPM pools {', '.join(map(str, dec.pool_sizes))}\n{edges}"
    if dec.detail:
        head += f"\ndetail path width {dec.detail}"
    if arch.heads.cap_head:
        stages = [name for name, on in (("presence", arch.heads.cap), ("classes", arch.heads.classes)) if on]
        head += f"\n+ CaP head ({' + '.join(stages)})"
    ax.text(x, depth + 1.0, head, ha="left", va="top", fontsize=7, family="monospace",
            bbox={"boxstyle": "round", "fc": "#eeeeee", "ec": "#999999"})  # fmt: skip
    used = {b.op for st in arch.stages for b in st.blocks}
    for op in (op for op in block_operators() if op.name in used):
        ax.scatter([], [], marker="s", color=op.colour, label=op.name)
    ax.legend(loc="lower left", bbox_to_anchor=(0, -0.02), ncol=3, fontsize=7, frameon=False)
    ax.set_xlim(-0.2, len(arch.stages) + 1.6)
    ax.set_ylim(-0.6, depth + 1.1)
    ax.axis("off")
    fig.tight_layout()
    return png(fig)


def _box(x: float, y: float, colour: str):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x, y), 0.8, 0.8, boxstyle="round,pad=0.02", fc=colour, ec="none")


def confusion_matrix(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> bytes:
    """Pixel confusion matrix, each row (ground truth) normalised to 100%, with its pixel counts."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(classes)
    fig = new_figure((1.2 * n + 2.2, 1.0 * n + 1.4))
    ax = fig.add_subplot()
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if rows[i, j] > 0.6 else "black"
            ax.text(j, i, f"{100 * rows[i, j]:.1f}%\n{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color=colour)  # fmt: skip
    ax.set_xticks(range(n), classes, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="ground truth", title="pixels (row = 100%)")
    fig.tight_layout()
    return png(fig)
