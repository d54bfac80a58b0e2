"""A step with non-finite gradients is skipped, not applied; a run that keeps producing them stops."""

from __future__ import annotations

import torch

from autonad.cli import main
from autonad.train.losses import JointLoss

from .conftest import checkpoint, make_tiny_run

FAST = {"latency_every": 0, "checkpoint_steps": 1}


def _poison(monkeypatch, bad_calls: set[int] | None) -> None:
    """Make the joint loss NaN on the given calls (None: on every call from the third on)."""
    forward, calls = JointLoss.forward, [0]

    def poisoned(self, *args, **kwargs):
        loss, logged = forward(self, *args, **kwargs)
        calls[0] += 1
        if (calls[0] in bad_calls) if bad_calls is not None else calls[0] >= 3:
            loss = loss * float("nan")
        return loss, logged

    monkeypatch.setattr(JointLoss, "forward", poisoned)


def test_a_non_finite_step_is_skipped_and_training_goes_on(tiny_data, tmp_path, monkeypatch):
    run = make_tiny_run(tmp_path, tiny_data, **FAST)
    _poison(monkeypatch, {4})
    assert main(run.args(tmp_path / "run", "--steps", "8")) == 0
    ckpt = checkpoint(tmp_path / "run")
    assert ckpt["state"]["skipped_steps"] == 1 and ckpt["state"]["global_step"] == 8
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_a_diverged_run_stops_with_one_line(tiny_data, tmp_path, monkeypatch, capsys):
    run = make_tiny_run(tmp_path, tiny_data, **FAST)
    _poison(monkeypatch, None)
    assert main(run.args(tmp_path / "run", "--steps", "40")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged: 20 steps in a row" in err[0]
