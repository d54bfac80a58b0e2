from dataclasses import dataclass, field
from typing import Literal

import pytest

from autonad.config import dump_yaml, from_mapping, load_dataclass, load_yaml, to_mapping
from autonad.errors import AutoNADError


@dataclass
class Optim:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Recipe:
    name: str
    epochs: int
    sampler: Literal["uniform", "sandwich"] = "uniform"
    optim: Optim = field(default_factory=Optim)
    input_size: list[int] = field(default_factory=lambda: [320, 320])
    note: str | None = None


def test_builds_nested_typed_dataclasses():
    r = from_mapping(Recipe, {"name": "demo", "epochs": 3, "optim": {"lr": 1}, "input_size": [64, 96]}, "r")
    assert r.optim.lr == 1.0 and isinstance(r.optim.lr, float)
    assert r.optim.betas == (0.9, 0.999)
    assert r.input_size == [64, 96] and r.note is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "d", "epochs": 3, "epocs": 4}, "r: unknown key 'epocs' (known keys: name, epochs"),
        ({"name": "d"}, "r: missing required key 'epochs'"),
        ({"name": "d", "epochs": "many"}, "r.epochs: expected int, got 'many'"),
        ({"name": "d", "epochs": True}, "r.epochs: expected int"),
        ({"name": "d", "epochs": 1, "sampler": "greedy"}, "r.sampler: 'greedy' is not one of 'uniform', 'sandwich'"),
        ({"name": "d", "epochs": 1, "optim": {"lr": 1, "momentum": 0.9}}, "r.optim: unknown key 'momentum'"),
        ({"name": "d", "epochs": 1, "optim": {"betas": [0.9]}}, "r.optim.betas: expected 2 values"),
        ({"name": "d", "epochs": 1, "input_size": [64, "x"]}, "r.input_size[1]: expected int"),
        ([1, 2], "r: expected a mapping for Recipe"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(AutoNADError) as err:
        from_mapping(Recipe, data, "r")
    assert str(err.value).startswith(message)


def test_yaml_round_trip_and_file_errors(tmp_path):
    recipe = Recipe(name="demo", epochs=2)
    path = tmp_path / "sub" / "recipe.yaml"
    dump_yaml(to_mapping(recipe), path)
    assert load_dataclass(Recipe, path) == recipe
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temp file
    with pytest.raises(AutoNADError, match="file not found"):
        load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(AutoNADError, match=r"broken.yaml: not valid YAML \(line"):
        load_yaml(tmp_path / "broken.yaml")
