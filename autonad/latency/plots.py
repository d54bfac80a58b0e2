"""Pictures of the latency model: the prior heatmap (paper Fig. 5)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autonad.figures import new_figure, save_figure

if TYPE_CHECKING:
    from autonad.latency.prior import LatencyPrior


def prior_heatmap(prior: LatencyPrior, path: str | Path, title: str = "") -> None:
    weights = prior.gene_weights
    genes = {g.name: g for g in prior.space.genes}
    block_rows = [n for n in weights if n.startswith("s")]
    edge_rows = [n for n in weights if n.startswith("dec.")]
    block_ops = list(dict.fromkeys(ch for n in block_rows for ch in genes[n].choices))
    edge_ops = list(prior.space.decoder.edge_ops)
    fig = new_figure((11, 0.32 * max(len(block_rows), len(edge_rows)) + 2.2))
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.5})
    for ax, rows, ops, label in ((axes[0], block_rows, block_ops, "block position"),
                                 (axes[1], edge_rows, edge_ops, "MFAM edge")):  # fmt: skip
        grid = np.full((len(rows), len(ops)), np.nan)
        for i, name in enumerate(rows):
            for choice, p in zip(genes[name].choices, weights[name]):
                grid[i, ops.index(choice)] = p
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(ops)), ops, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), [r.removesuffix(".op").removeprefix("dec.") for r in rows])
        ax.set_ylabel(label)
        for i in range(len(rows)):
            for j in range(len(ops)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 0.5 else "black")  # fmt: skip
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="P(op)")
    fig.suptitle(title or f"latency prior, {prior.source}, T={prior.temperature:g}")
    save_figure(fig, path)
