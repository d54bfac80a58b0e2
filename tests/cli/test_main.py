import pytest
import torch

from autonad import __version__
from autonad.cli import COMMAND_MODULES, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "datasets",
        "space",
        "arch",
        "train-supernet",
        "profile",
        "latency",
        "search",
        "export",
        "retrain",
        "tune",
        "ensemble",
        "evaluate",
        "predict",
        "report",
    ):
        assert command in out
    assert len(COMMAND_MODULES) == 11


def test_version_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["serach"])
    assert exit_.value.code == 2
    assert "invalid choice: 'serach'" in capsys.readouterr().err


DEVICE_COMMANDS = {  # every command that computes, with the least arguments it parses with
    "train-supernet": ["train-supernet"],
    "search": ["search", "--hw", "cpu"],
    "retrain": ["retrain", "--arch", "arch.yaml"],
    "tune": ["tune", "--arch", "arch.yaml"],
    "ensemble": ["ensemble", "--members", "a", "b", "--out", "e"],
    "evaluate": ["evaluate", "--model", "model.ts"],
    "predict": ["predict", "--model", "model.ts", "image.png"],
    "profile": ["profile", "--hw", "cpu"],
    "latency": ["latency", "--hw", "cpu", "--arch", "arch.yaml", "--measure"],
    "latency validate": ["latency", "validate", "--hw", "cpu"],
}


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_every_computing_command_takes_the_one_device_rule(command):
    args = build_parser().parse_args(DEVICE_COMMANDS[command])
    assert args.device == "auto"
    for choice in ("cpu", "cuda"):
        assert build_parser().parse_args([*DEVICE_COMMANDS[command], "--device", choice]).device == choice


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_device_cuda_without_a_gpu_is_one_line_before_any_work(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*DEVICE_COMMANDS[command], "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --device cuda: no CUDA device is available (use --device cpu)"
    assert not any(tmp_path.iterdir())  # nothing read or written
