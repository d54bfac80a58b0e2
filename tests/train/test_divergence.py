"""A step with non-finite gradients is skipped, not applied; a run that keeps producing them stops."""

from __future__ import annotations

import pytest
import torch

from autonad.cli import main
from autonad.timing import cpu_bf16
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


@pytest.mark.skipif(not cpu_bf16(), reason="the CPU computes bf16 natively only with avx512_bf16/amx")
def test_a_run_whose_bf16_steps_are_non_finite_goes_on_in_fp32(tiny_data, tmp_path, monkeypatch):
    forward = JointLoss.forward

    def nan_under_bf16(self, *args, **kwargs):
        loss, logged = forward(self, *args, **kwargs)
        return (loss * float("nan") if torch.is_autocast_enabled("cpu") else loss), logged

    monkeypatch.setattr(JointLoss, "forward", nan_under_bf16)
    run = make_tiny_run(tmp_path, tiny_data, cpu_bf16=True, **FAST)
    assert main(run.args(tmp_path / "run", "--steps", "8")) == 0
    ckpt = checkpoint(tmp_path / "run")
    assert ckpt["state"]["fp32_since"] == 1 and ckpt["state"]["skipped_steps"] == 1
    assert ckpt["history"][0]["fp32_since"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_a_finite_bf16_run_stays_in_bf16(tiny_data, tmp_path):
    run = make_tiny_run(tmp_path, tiny_data, cpu_bf16=True, **FAST)
    assert main(run.args(tmp_path / "run", "--steps", "4")) == 0
    assert checkpoint(tmp_path / "run")["state"]["fp32_since"] is None
