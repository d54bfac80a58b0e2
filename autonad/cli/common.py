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
