"""Figures: headless matplotlib figures (no pyplot global state) and one atomic PNG writer."""

from __future__ import annotations

import os
from pathlib import Path

from autonad.config import write_atomic


def new_figure(figsize: tuple[float, float], dpi: int = 120):
    """A matplotlib Figure with an Agg canvas: no display backend, nothing global to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write `fig` as a PNG atomically (a reader never sees half a file)."""
    write_atomic(Path(path), lambda f: fig.savefig(f, format="png", bbox_inches="tight"))
