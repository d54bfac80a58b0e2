"""Terminal output: one rich console and one progress-bar style for every long loop."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

# soft_wrap: long lines are left to the terminal (or the pager) to wrap, not broken at 80 columns when
# piped; tables are fitted to the width instead (`fit_table`)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)


def pct(value: float | None) -> str:
    """A [0, 1] metric as a percentage with one decimal; "-" where it is undefined."""
    return "-" if value is None else f"{100 * value:.1f}"


def fit_table(table: Table, drop: Sequence[str] = (), on: Console | None = None) -> Table:
    """`table` made to fit the console's width (80 when piped) with one line per row: cells never wrap
    (too long ones end in an ellipsis), the columns named in `drop` are removed, in that order, while
    the table is wider than the console, and then the widest column other than the first (which
    names the row) gives up the rest."""
    on = on or console
    for column in table.columns:
        column.no_wrap, column.overflow = True, "ellipsis"
    for header in drop:
        if natural_width(table, on) <= on.width:
            break
        table.columns[:] = [c for c in table.columns if c.header != header]
    excess = natural_width(table, on) - on.width
    if excess > 0 and len(table.columns) > 1:  # the widest other column gives up the rest
        widest = max(table.columns[1:], key=text_width)
        widest.max_width = max(4, text_width(widest) - excess)
    return table


def text_width(column: Column) -> int:
    """The widest cell (or header) of a column of plain-text cells."""
    return max((cell_len(str(c)) for c in [column.header, *column.cells]), default=0)


def natural_width(table: Table, on: Console) -> int:
    """The width `table` takes with no limit."""
    return Measurement.get(on, on.options.update(width=10_000), table).maximum


def progress(**kwargs) -> Progress:
    """A rich progress bar (spinner, description, bar, n/N, elapsed, remaining)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=kwargs.pop("console", console),
        **kwargs,
    )
