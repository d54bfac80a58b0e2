"""Bad input to `autonad train-supernet`: one clear line on stderr, exit code 2, no traceback.

Driven through the CLI entry point (`autonad.cli.main`) in this process; one case also runs the
installed command in a subprocess, to see the real stderr and exit status.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from autonad.cli import main
from autonad.train.checkpoint import load_checkpoint, save_atomic
from autonad.train.trainer import CHECKPOINT_FORMAT

from .conftest import TinyRun, make_tiny_run, run_cli, write_supernet


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> tuple[TinyRun, Path]:
    """A finished one-epoch run; tests copy its folder before breaking anything."""
    root = tmp_path_factory.mktemp("cli-train")
    old = torch.get_num_threads()
    run = make_tiny_run(root, tiny_data, epochs=1, checkpoint_steps=0, latency_every=0)
    assert main(run.args(root / "run")) == 0
    torch.set_num_threads(old)
    return run, root / "run"


@pytest.fixture
def run_copy(trained, tmp_path) -> tuple[TinyRun, Path]:
    run, folder = trained
    return run, Path(shutil.copytree(folder, tmp_path / "run"))


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_resume_with_another_supernet_definition(run_copy, capsys):
    run, out = run_copy
    before = (out / "checkpoint.pt").read_bytes()
    other = write_supernet(run.root / "tiny-other.yaml", "tiny-x", drop_path=0.2)  # same name, other definition
    line = one_line_error(capsys, main(run.args(out, "--resume", supernet=other)))
    assert f"{out / 'checkpoint.pt'}: was trained for supernet 'tiny-x', which differs from 'tiny-x'" in line
    line = one_line_error(capsys, main(run.args(out, "--resume", supernet="tiny")))
    assert "was trained for supernet 'tiny-x', which differs from 'tiny' as defined now" in line
    assert (out / "checkpoint.pt").read_bytes() == before  # a refused resume leaves the run alone


def test_resume_with_weights_that_no_longer_fit_the_code(run_copy, capsys):
    """Same YAML definition, but the supernet code changed since (a tensor gone, another reshaped)."""
    run, out = run_copy
    ckpt = load_checkpoint(out / "checkpoint.pt", CHECKPOINT_FORMAT)
    first, second = list(ckpt["model"])[:2]
    del ckpt["model"][first]
    ckpt["model"][second] = torch.zeros(3, 1)
    save_atomic(ckpt, out / "checkpoint.pt")
    line = one_line_error(capsys, main(run.args(out, "--resume")))
    assert f"{out / 'checkpoint.pt'}: its weights do not fit supernet 'tiny-x' as the code defines it now" in line
    assert f"missing {first}" in line and f"shape {second} (3, 1)" in line


def test_resume_from_a_checkpoint_with_missing_entries(run_copy, capsys):
    run, out = run_copy
    ckpt = load_checkpoint(out / "checkpoint.pt", CHECKPOINT_FORMAT)
    del ckpt["scheduler"]
    save_atomic(ckpt, out / "checkpoint.pt")
    line = one_line_error(capsys, main(run.args(out, "--resume")))
    assert f"{out / 'checkpoint.pt'}: incomplete or damaged training checkpoint" in line and "scheduler" in line


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_resume_from_a_corrupt_checkpoint(run_copy, capsys, damage):
    run, out = run_copy
    path = out / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x80\x02garbage" * 500, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    line = one_line_error(capsys, main(run.args(out, "--resume")))
    assert f"{path}: not a readable checkpoint (truncated, corrupt or not saved by AutoNAD)" in line


def test_unknown_recipe_key(tiny_run, tmp_path, capsys):
    recipe = tiny_run.write_recipe("typo", val_evry=2)
    args = tiny_run.args(tmp_path / "run")
    args[args.index("--recipe") + 1] = str(recipe)
    line = one_line_error(capsys, main(args))
    assert f"{recipe}.train: unknown key 'val_evry'" in line
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_name(tiny_run, tmp_path, capsys):
    args = tiny_run.args(tmp_path / "run")
    args[args.index("--recipe") + 1] = "no-such-recipe"
    line = one_line_error(capsys, main(args))
    assert "unknown recipe 'no-such-recipe' (available: " in line


def test_existing_run_without_resume(run_copy, capsys):
    run, out = run_copy
    before = (out / "checkpoint.pt").read_bytes()
    line = one_line_error(capsys, main(run.args(out)))
    assert f"{out}: already holds a training run; pass --resume or choose another --out" in line
    assert (out / "checkpoint.pt").read_bytes() == before


def test_the_installed_command_prints_one_line_and_exits_2(run_copy):
    run, out = run_copy
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = run_cli(run.args(out, "--resume"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {out / 'checkpoint.pt'}: not a readable checkpoint (truncated, corrupt or not saved by AutoNAD)"
    ]
