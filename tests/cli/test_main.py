import pytest

from autonad import __version__
from autonad.cli import COMMAND_MODULES, main


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
        "evaluate",
        "predict",
        "report",
    ):
        assert command in out
    assert len(COMMAND_MODULES) == 10


def test_version_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["serach"])
    assert exit_.value.code == 2
    assert "invalid choice: 'serach'" in capsys.readouterr().err
