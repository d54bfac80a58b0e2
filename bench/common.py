"""What the benchmarks share: where results go and the demo supernet they run on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_CHECKPOINT = Path("runs/supernet/synthetic__tiny__demo/checkpoint.pt")  # trained by the README's main job


def report(name: str, result: dict) -> None:
    """Print the figures as JSON and write them to bench/results/<name>.json."""
    text = json.dumps(result, indent=1)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(text + "\n")


def require_checkpoint(path: Path) -> None:
    if not path.is_file():
        sys.exit(f"{path}: not found; run the README's main job first (it trains the demo supernet)")
