"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse


def input_size(text: str) -> tuple[int, int]:
    """Parse '320x320' (HxW) or '320' (square)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must look like 320x320, got '{text}'") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 16:
        raise argparse.ArgumentTypeError(f"input size must be HxW with both sides >= 16, got '{text}'")
    return values[0], values[1]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def pct(value: float | None) -> str:
    """A [0, 1] metric as a percentage with one decimal; "-" where it is undefined."""
    return "-" if value is None else f"{100 * value:.1f}"


def metrics_table(report, title: str):
    """The headline metrics of a `MetricsReport`, then the IoU of every class, as a rich table."""
    from rich.table import Table

    from autonad.export.inference import report_rows

    table = Table("metric", "value", title=title)
    for name, value in report_rows(report):
        table.add_row(name, pct(value))
    for name, value in report.per_class_iou.items():
        table.add_row(f"IoU {name}", pct(value))
    return table
