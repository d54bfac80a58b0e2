import yaml

from autonad.cli import main
from autonad.space import Arch, SearchSpace


def test_space_list_and_show(capsys):
    assert main(["space", "list"]) == 0
    out = capsys.readouterr().out
    assert "autonad" in out and "conv+transformer" in out and "tiny" in out
    assert main(["space", "show", "autonad"]) == 0
    out = capsys.readouterr().out
    assert "{32, 64, 96, 128}" in out and "{7.5, 8, 8.5, 9}" in out and "52 genes" in out


def test_arch_sample_writes_valid_yaml(tmp_path, capsys):
    assert (
        main(["arch", "sample", "--space", "tiny", "--n", "3", "--seed", "4", "--out", str(tmp_path), "--no-size"]) == 0
    )
    files = sorted(tmp_path.glob("arch-*.yaml"))
    assert len(files) == 3
    space = SearchSpace.load("tiny")
    for f in files:
        arch = Arch.load(f)
        space.validate(arch)
        assert arch.hash in f.name
        assert yaml.safe_load(f.read_text())["stages"][0]["depth"] == arch.stages[0].depth
    assert main(["arch", "info", *map(str, files), "--space", "tiny", "--no-size"]) == 0


def test_arch_info_rejects_arch_of_another_space(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    SearchSpace.load("autonad").largest().save(path)
    assert main(["arch", "info", str(path), "--space", "tiny", "--no-size"]) == 2
    err = capsys.readouterr().err
    assert "big.yaml.stages[0].depth: 4 is not in search space 'tiny'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_space_lists_available(capsys):
    assert main(["space", "show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown search space 'nope'" in err and "autonad" in err
