"""Terminal tables fit the width they are printed at: one line per row, optional columns dropped first."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from autonad.ui import fit_table

HEADERS = ("", "score", "fitness", "mIoU", "S_mIoU", "Seg_Rec", "ms", "params", "GFLOPs")


def rendered(width: int, drop=("GFLOPs", "params", "S_mIoU", "score", "Seg_Rec")) -> list[str]:
    table = Table(*HEADERS, title="search result (14 subnets evaluated, 5 on the Pareto front)")
    for i in range(4):
        table.add_row(f"front {i + 1}", "0.5161", "0.5161", "51.6", "3.8", "100.0", "1.41", "0.36M", "0.01")
    on = Console(file=io.StringIO(), width=width, color_system=None)
    on.print(fit_table(table, drop, on=on))
    return on.file.getvalue().splitlines()


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_rows_never_wrap_and_fit(width):
    lines = rendered(width)
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 4 and all(len(line) <= width for line in lines)
    assert all("front" in row for row in rows)  # each row on one line, its label kept


def test_columns_go_in_the_given_order_only_when_needed():
    wide, narrow = rendered(200), rendered(60)
    assert "GFLOPs" in wide[2] and "S_mIoU" in wide[2]
    header = next(line for line in narrow if "fitness" in line)
    assert "GFLOPs" not in header and "params" not in header and "mIoU" in header and "ms" in header


def test_the_row_names_stay_whole_and_the_widest_column_gives_way():
    table = Table("name", "description")
    table.add_row("autonad-fine", "Paper Table I space with a conv stem and a searchable two-level detail path " * 2)
    on = Console(file=io.StringIO(), width=50, color_system=None)
    on.print(fit_table(table, on=on))
    lines = on.file.getvalue().splitlines()
    assert all(len(line) <= 50 for line in lines) and "autonad-fine" in lines[3] and lines[3].endswith("… │")
