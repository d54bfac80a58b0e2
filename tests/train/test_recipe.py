import pytest
import torch

from autonad import resources
from autonad.errors import AutoNADError
from autonad.latency.table import load_profile
from autonad.supernet import SupernetConfig
from autonad.train.recipe import Recipe, default_recipe


def test_every_shipped_recipe_loads_with_its_supernet():
    names = resources.list_shipped("recipes")
    for dataset in ("mt", "neu-seg", "msd", "ksdd2", "default"):
        assert {dataset, f"{dataset}-cpu"} <= set(names)
    for name in names:
        recipe = Recipe.load(name)
        SupernetConfig.load(recipe.supernet)
        h, w = recipe.input_size
        assert h >= 32 and w >= 32


@pytest.mark.parametrize("name", [n for n in resources.list_shipped("recipes") if not n.startswith("neu-seg-ablation")])
def test_every_shipped_recipe_has_gpu_latency_profiles_for_its_space_and_size(name):
    """A shipped recipe searches with latency on every shipped GPU device: a profile of its
    supernet's space at its input size on each table (the CPU table: see the next test)."""
    recipe = Recipe.load(name)
    space = SupernetConfig.load(recipe.supernet).search_space
    for device in ("jetson-xavier-nx", "jetson-orin-nano", "rtx3090"):
        load_profile(device, space, recipe.input_size)


@pytest.mark.parametrize("name", [n for n in resources.list_shipped("recipes") if n.endswith("-cpu") or n == "demo"])
def test_every_cpu_recipe_has_a_measured_cpu_profile(name):
    recipe = Recipe.load(name)
    _, profile = load_profile("cpu", SupernetConfig.load(recipe.supernet).search_space, recipe.input_size)
    assert profile.provenance == "measured"


def test_paper_settings_where_the_paper_gives_them():
    # Paper V-B: AdamW 5e-4 with cosine decay; 800 epochs NEU, 3000 MT, 2000 MSD; MT at 320x320, MSD at 960x540.
    for name, epochs, size in (("mt", 3000, (320, 320)), ("neu-seg", 800, (200, 200)), ("msd", 2000, (540, 960))):
        recipe = Recipe.load(name)
        assert (recipe.train.epochs, recipe.input_size, recipe.train.lr) == (epochs, size, 5e-4)
        assert recipe.train.weight_decay == 0.05 and recipe.supernet == "autonad"


def test_default_recipe_per_dataset():
    cpu = not torch.cuda.is_available()
    assert default_recipe("synthetic") == "demo"
    assert default_recipe("mt") == ("mt-cpu" if cpu else "mt")
    assert default_recipe("folder:/data/line7") == ("default-cpu" if cpu else "default")


def test_unknown_recipe_key_names_the_file_and_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(resources.resolve("recipes", "demo").read_text().replace("val_every:", "valevery:", 1))
    assert "valevery:" in path.read_text()
    with pytest.raises(AutoNADError, match=r"mine.yaml.train: unknown key 'valevery'"):
        Recipe.load(path)
    with pytest.raises(AutoNADError, match="unknown recipe 'nope'"):
        Recipe.load("nope")


def test_a_search_fine_tunes_with_the_retrain_settings_and_its_own_budget():
    recipe = Recipe.load("default-cpu")
    assert recipe.search.finetune_minutes == 20 and recipe.search.finetune_tag == "20min"
    tuned = recipe.finetune_recipe()
    assert tuned.retrain.minutes == 20 and tuned.retrain.steps is None and tuned.retrain.lr == recipe.retrain.lr
    assert tuned.name == "default-cpu+finetune-20min" and tuned.train == recipe.train
    steps = recipe.with_finetune(steps=50)
    assert (steps.search.finetune_steps, steps.search.finetune_minutes, steps.name) == (50, None, "default-cpu")
    off = recipe.with_finetune(steps=50, off=True)
    assert not off.search.finetunes
    with pytest.raises(AutoNADError, match="sets no fine-tuning budget"):
        off.finetune_recipe()
    assert recipe.with_finetune() is recipe


def test_a_recipe_inherits_its_base_and_overrides_key_by_key(tmp_path):
    (tmp_path / "line.yaml").write_text(
        "base: default-cpu\nname: line\ntrain:\n  lr: 2.0e-3\n  minutes: null\n  epochs: 7\n"
        "transform:\n  size: [96, 160]\n"
    )
    (tmp_path / "line-long.yaml").write_text("base: line\nname: line-long\ntrain:\n  epochs: 70\n")
    base, line = Recipe.load("default-cpu"), Recipe.load(tmp_path / "line.yaml")
    long = Recipe.load(tmp_path / "line-long.yaml")
    assert (line.name, line.description, line.train.lr, line.train.minutes) == ("line", "", 2e-3, None)
    assert line.input_size == (96, 160) and line.transform.defect_crops == base.transform.defect_crops
    assert line.train.batch_size == base.train.batch_size and line.retrain == base.retrain
    assert (long.train.epochs, long.train.lr, long.input_size) == (70, 2e-3, (96, 160))  # the sibling `line`


def test_every_shipped_recipe_names_itself_and_gpu_recipes_share_the_default():
    for name in resources.list_shipped("recipes"):
        assert Recipe.load(name).name == name
    for name in ("mt", "neu-seg", "msd", "ksdd2"):
        recipe, default = Recipe.load(name), Recipe.load("default")
        assert recipe.retrain == default.retrain and recipe.search == default.search


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: [default]\nname: x\n", "base: expected a recipe name"),
        ("base: nope\nname: x\n", "unknown recipe 'nope'"),
        ("base: ./missing.yaml\nname: x\n", "missing.yaml: file not found"),
        ("base: loop\nname: loop\n", "inherits from itself"),
        ("base: default\ntrain:\n  epochs: 3\n", "missing required key 'name'"),
        ("base: default\nname: x\ntrain:\n  epoch: 3\n", "loop.yaml.train: unknown key 'epoch'"),
    ],
)
def test_a_bad_base_is_one_line(tmp_path, text, message):
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    with pytest.raises(AutoNADError, match=message):
        Recipe.load(path)
