"""`autonad ensemble --run`: diverse archs of a search retrained and combined into one model."""

from __future__ import annotations

import json

from autonad.cli import main
from autonad.search.outputs import load_history


def test_an_ensemble_picked_from_a_search_is_retrained_tuned_and_exported(search_run, tmp_path, capsys):
    run, dataset = search_run
    out = tmp_path / "ensemble"
    recipe = str(run.parent / "recipe.yaml")
    argv = ["ensemble", "--run", str(run), "--k", "2", "--dataset", dataset, "--recipe", recipe, "--steps", "3",
            "--threads", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((out / "model.json").read_text())
    members = meta["ensemble"]["members"]
    evaluated = {c.hash for c in load_history(run)}
    assert len(members) == 2 and all(m["arch_hash"] in evaluated for m in members)
    assert all((out / "members" / m["arch_hash"][:8] / "retrain" / "best.pt").is_file() for m in members)
    assert (out / "model.ts").is_file() and (out / "model.onnx").is_file() and meta["metrics"]["split"] == "test"
    capsys.readouterr()
    assert main([*argv, "--calibrate", "f1", "--per-class"]) == 0  # a second run reuses the retrained members
    assert "member 1/2" not in capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text())
    rounds = meta["ensemble"]["fit_rounds"]  # weights and thresholds fitted alternately, the last kept
    assert 1 <= len(rounds) <= 3 and rounds[-1]["weights"] == [m["weight"] for m in meta["ensemble"]["members"]]
    assert rounds[-1]["pixel_thresholds"] == meta["decision"].get("pixel_thresholds", {})
