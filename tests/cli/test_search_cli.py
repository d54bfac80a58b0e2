"""`autonad search` end to end on a tiny folder dataset: supernet once, prior, evolution, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from autonad.cli import main
from autonad.data import SyntheticSource
from autonad.data.folder import write_folder
from autonad.export import load_exported
from autonad.space import Arch
from autonad.train.subnet import load_trained_subnet

RECIPE = {"name": "search-cli-test", "dataset": "folder", "supernet": "tiny", "normalise": "dataset",
          "transform": {"size": [32, 32], "hflip": True},
          "train": {"epochs": 1, "batch_size": 4, "val_every": 1, "latency_every": 0, "cap": False, "seed": 3},
          "search": {"population": 6, "generations": 3, "parents": 2, "val_images": 4}}  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("search-cli")
    data = write_folder(SyntheticSource(n=24, size=40, seed=1), root / "data")
    (root / "recipe.yaml").write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    table = root / "tables" / "test-gpu.yaml"
    old = os.getcwd()
    os.chdir(root)
    try:
        argv = ["profile", "--hw", "rtx3090", "--roofline", "--search-space", "tiny", "--input-size", "32x32",
                "--classes", "4", "--out", str(table)]  # fmt: skip
        assert main(argv) == 0
    finally:
        os.chdir(old)
    return root, f"folder:{data}", table


def search_args(setup, out: str, *extra: str) -> list[str]:
    root, dataset, table = setup
    return ["search", "--dataset", dataset, "--recipe", str(root / "recipe.yaml"), "--hw", str(table),
            "--out", str(root / out), "--workers", "0", "--seed", "1", *extra]  # fmt: skip


@pytest.fixture
def in_root(setup, monkeypatch):
    monkeypatch.chdir(setup[0])
    return setup[0]


def test_search_end_to_end_and_supernet_reuse(setup, in_root, capsys):
    assert main(search_args(setup, "run-a")) == 0
    out = capsys.readouterr().out
    assert "supernet: training tiny" in out and "search result" in out and "roofline" in out
    run = in_root / "run-a"
    for name in ("best_arch.yaml", "pareto.csv", "history.jsonl", "pareto.png", "latency_prior.png", "model.ts",
                 "summary.yaml"):  # fmt: skip
        assert (run / name).is_file(), name
    best = Arch.load(run / "best_arch.yaml")
    model, meta = load_exported(run / "model.ts")
    assert meta["arch_hash"] == best.hash and meta["latency_provenance"] == "estimate"
    assert model(torch.randn(1, 3, 32, 32))["seg"].shape == (1, 4, 32, 32)
    assert len((run / "history.jsonl").read_text().splitlines()) >= 6
    summary = yaml.safe_load((run / "summary.yaml").read_text())
    assert summary["search"]["selection"] == "nsga2" and summary["search"]["objective"] == "auto"
    assert summary["why"] in out.replace("\n", " ") or summary["why"][:40] in out  # printed with the table
    assert Path(summary["supernet"]).is_absolute()  # export --run works from any folder
    assert "validation noise: SE" in summary["why"] and summary["best"]["metrics"]["se"]["miou"] > 0
    # the default prior (auto): the recipe records no latencies, so the table's
    assert summary["prior"].startswith("table ") and summary["prior"].endswith(
        "(the supernet has no training latency records)"
    )

    assert main(search_args(setup, "run-b", "--generations", "1")) == 0
    assert "supernet: reusing" in capsys.readouterr().out
    changed = in_root / "changed" / "recipe.yaml"  # same name and file stem, so the same supernet folder
    changed.parent.mkdir()
    changed.write_text(yaml.safe_dump({**RECIPE, "train": {**RECIPE["train"], "dice_weight": 0.5}}))
    argv = [*search_args(setup, "run-c", "--generations", "1"), "--recipe", str(changed)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    recipe = "was trained with recipe 'search-cli-test' as it was then; it has changed"
    assert f"{recipe} (train.dice_weight: 0.0 then, 0.5 now)" in err
    assert len(err.splitlines()) == 1 and not (in_root / "run-c").exists()

    assert (run / "model.onnx").is_file() and load_exported(run / "model.onnx")[1]["arch_hash"] == best.hash
    assert main(["export", "--run", str(run), "--format", "state-dict"]) == 0
    model, meta = load_exported(run / "model.pt")
    assert meta["latency_provenance"] == "estimate" and meta["classes"][0] == "background"
    checkpoint = yaml.safe_load((run / "summary.yaml").read_text())["supernet"]
    out = in_root / "exported"
    assert main(["export", "--arch", str(run / "best_arch.yaml"), "--supernet", checkpoint, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"model.ts", "model.onnx", "model.json"}
    assert main(["export", "--arch", str(run / "best_arch.yaml")]) == 2
    assert "--arch needs --supernet" in capsys.readouterr().err


def test_a_latency_weight_as_a_percentage_is_a_share_of_the_fitness(setup, in_root):
    assert main(search_args(setup, "share", "--generations", "1", "--latency-weight", "2%")) == 0
    summary = yaml.safe_load((in_root / "share" / "summary.yaml").read_text())
    assert summary["search"]["latency_share"] == pytest.approx(0.02) and summary["search"]["latency_weight"] == 0.0
    assert summary["search"]["selection"] == "score" and summary["why"].startswith("highest score")


def test_kill_and_resume_gives_the_same_best_arch(setup, in_root):
    assert main(search_args(setup, "reference", "--generations", "4")) == 0
    cmd = [sys.executable, "-m", "autonad", *search_args(setup, "killed", "--generations", "4")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=in_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = in_root / "killed" / "search_state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # into a later generation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(search_args(setup, "killed", "--generations", "4", "--resume")) == 0
    assert (in_root / "killed" / "best_arch.yaml").read_text() == (in_root / "reference" / "best_arch.yaml").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max-latency-ms", "0.001"], "no architecture in search space 'tiny' satisfies --max-latency-ms 0.001"),
        (["--workers", "1", "--ray-address", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
        (["--hw", "tpu9"], "unknown device 'tpu9'"),
        (["--hw", "jetson"], "has no profile for search space 'tiny' at 32x32"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--objective", "nsga2", "--latency-weight", "2%"], "a latency weight would be ignored"),
        (["--prior", "records"], "recipe 'search-cli-test' takes none (train.latency_every: 0): use --prior table"),
    ],
)
def test_bad_input_is_one_line(setup, in_root, extra, message, capsys):
    assert main(search_args(setup, "bad") + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "value, message",
    [
        ("fast", "expected a weight per ms (0.01) or a percentage (2%), got 'fast'"),
        ("150%", "a percentage below 100"),
        ("-1", "expected 0 or more"),
    ],
)
def test_a_bad_latency_weight_is_refused_by_the_parser(setup, in_root, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*search_args(setup, "bad-weight"), "--latency-weight", value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err and not (in_root / "bad-weight").exists()


@pytest.fixture
def searched(setup, in_root) -> Path:
    """A finished search run with all three export formats (made once per module)."""
    run = in_root / "run-a"
    if not (run / "best_arch.yaml").exists():
        assert main(search_args(setup, "run-a")) == 0
    if not (run / "model.pt").exists():
        assert main(["export", "--run", str(run), "--format", "state-dict"]) == 0
    return run


def test_exported_models_evaluate_alike_and_predict(setup, in_root, searched, capsys):
    root, dataset, _ = setup
    run = searched
    results = {}
    for name in ("model.ts", "model.onnx", "model.pt"):
        out = in_root / f"eval-{name}.json"
        argv = ["evaluate", "--model", str(run / name), "--dataset", dataset, "--split", "val", "--seed", "3",
                "--out", str(out)]  # fmt: skip
        assert main(argv) == 0
        assert "Sample_mIoU" in capsys.readouterr().out
        results[name] = json.loads(out.read_text())
    for key in ("miou", "mf1", "sample_miou", "seg_recall", "confusion"):
        assert results["model.ts"][key] == results["model.onnx"][key] == results["model.pt"][key], key

    image = root / "odd.png"
    Image.fromarray((np.random.default_rng(0).random((57, 91, 3)) * 255).astype(np.uint8)).save(image)
    out = in_root / "pred"
    assert main(["predict", "--model", str(run / "model.ts"), str(image), "--out", str(out)]) == 0
    assert Image.open(out / "odd_mask.png").size == (91, 57) and (out / "odd_overlay.png").is_file()
    verdict = json.loads((out / "predictions.json").read_text())[0]
    assert 0.0 <= verdict["score"] <= 1.0 and isinstance(verdict["defective"], bool)


def test_deploy_bad_input_is_one_line(setup, in_root, searched, capsys):
    root, dataset, _ = setup
    run = searched
    (root / "notes.png").write_text("not an image")
    two = root / "two-classes"
    (two / "images").mkdir(parents=True, exist_ok=True)
    (two / "masks").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(two / "images" / "a.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(two / "masks" / "a.png")
    (two / "classes.txt").write_text("background\nscratch\n")
    cases = [
        (["predict", "--model", str(run / "model.ts"), str(root / "notes.png")], "not a readable image file"),
        (["evaluate", "--model", str(run / "best_arch.yaml"), "--dataset", dataset], "not an exported model"),
        (["evaluate", "--model", str(run / "model.ts"), "--dataset", f"folder:{two}"], "retrain the arch"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_retrain_the_searched_arch_on_a_new_line_with_other_classes(setup, in_root, searched, capsys):
    """The spec's second headline command: the arch searched above, retrained on a `folder:` product
    line with one defect class, starting from the search's supernet (found via summary.yaml)."""
    root, _, _ = setup
    line = write_folder(SyntheticSource(n=20, size=40, seed=5, defect_free=0.3), root / "new-line")
    for mask in (line / "masks").iterdir():
        Image.fromarray((np.asarray(Image.open(mask)) > 0).astype(np.uint8)).save(mask)
    (line / "classes.txt").write_text("background\ndefect\n")
    out = in_root / "retrained"
    argv = ["retrain", "--arch", str(searched / "best_arch.yaml"), "--dataset", f"folder:{line}", "--recipe",
            str(root / "recipe.yaml"), "--epochs", "2", "--out", str(out), "--format", "onnx"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.replace("\n", " ")
    assert "from supernet weights" in printed and "new class heads" in printed and "Seg_Recall" in printed
    meta = json.loads((out / "model.json").read_text())
    assert (
        meta["classes"] == ["background", "defect"]
        and meta["arch_hash"] == Arch.load(out.parent / "run-a" / "best_arch.yaml").hash
    )
    assert main(["evaluate", "--model", str(out / "model.onnx"), "--dataset", f"folder:{line}"]) == 0


def test_search_fine_tunes_the_best_arch_before_export(setup, in_root, searched, capsys):
    """With a fine-tuning budget the exported model is the best validation epoch of the best arch
    trained on from its inherited weights (epoch 0, the inherited weights, when no epoch beats them):
    the same arch, and `export --run` (and a resumed search) give that same model again."""
    root, _, _ = setup
    run = in_root / "run-ft"
    assert main(search_args(setup, "run-ft", "--finetune-steps", "6")) == 0
    assert "fine-tuning the best arch" in capsys.readouterr().out
    summary = yaml.safe_load((run / "summary.yaml").read_text())
    assert summary["finetune"]["steps"] == 6 and (run / "finetune-s6" / "best.pt").is_file()
    meta = json.loads((run / "model.json").read_text())
    best = Arch.load(run / "best_arch.yaml")
    assert meta["arch_hash"] == best.hash == Arch.load(searched / "best_arch.yaml").hash  # same search, same seed
    assert meta["recipe"] == "search-cli-test+finetune-s6" and meta["init"] == "supernet"
    assert "miou" in meta["inherited_metrics"] and "miou" in meta["metrics"] and meta["finetune_run"] == "finetune-s6"
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tuned, inherited = load_exported(run / "model.ts")[0](x)["seg"], load_exported(searched / "model.ts")[0](x)["seg"]
    kept = load_trained_subnet(run / "finetune-s6" / "best.pt")  # its best epoch; 0: the inherited weights won
    with torch.no_grad():
        assert torch.allclose(kept.net(x)["seg"], tuned, atol=1e-5) and meta["best_epoch"] == kept.best["epoch"]
    assert torch.allclose(tuned, inherited, atol=1e-5) == (kept.best["epoch"] == 0)
    assert main(["export", "--run", str(run), "--format", "state-dict"]) == 0
    assert torch.allclose(load_exported(run / "model.pt")[0](x)["seg"], tuned, atol=1e-5)
    assert main(search_args(setup, "run-ft", "--finetune-steps", "6", "--resume")) == 0
    assert torch.allclose(load_exported(run / "model.ts")[0](x)["seg"], tuned, atol=1e-6)
    assert main(search_args(setup, "run-ft", "--no-finetune", "--resume")) == 0  # the paper's export, same search
    assert torch.allclose(load_exported(run / "model.ts")[0](x)["seg"], inherited, atol=1e-5)
    assert "finetune" not in yaml.safe_load((run / "summary.yaml").read_text())


def test_finetune_budget_given_twice_is_one_line(setup, in_root, capsys):
    root, _, _ = setup
    bad = root / "bad-finetune.yaml"
    bad.write_text(yaml.safe_dump({**RECIPE, "search": {**RECIPE["search"], "finetune_steps": 5,
                                                        "finetune_minutes": 1.0}}))  # fmt: skip
    assert main([*search_args(setup, "bad-ft"), "--recipe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "give the fine-tuning budget once" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_search_on_a_ray_start_cluster_with_token_authentication(setup, ray_cluster, tmp_path):
    """The supernet trains in the driver; its candidates are evaluated by one actor on each node."""
    args = search_args(setup, "run-cluster", "--generations", "1")
    args[args.index("--workers") + 1] = "2"
    env = ray_cluster.env(HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "autonad", *args, "--ray-address", ray_cluster.address],
                            env=env, cwd=setup[0], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "evaluating on 2 Ray workers (CPU)" in result.stdout and "search result" in result.stdout
    history = (setup[0] / "run-cluster" / "history.jsonl").read_text().splitlines()
    # generation 0's population, then a refinement generation (cheaper neighbours of the near-best archs)
    assert 6 < len(history) <= 12


def test_search_with_the_prior_fitted_to_the_training_latency_records(setup, in_root, capsys):
    """Paper IV-D: the supernet times its sampled subnet every `latency_every` steps, and
    `--prior records` fits the op costs of the search's prior to those records."""
    recipe = in_root / "records" / "search-cli-records.yaml"
    recipe.parent.mkdir()
    recipe.write_text(yaml.safe_dump({**RECIPE, "name": "search-cli-records",
                                      "train": {**RECIPE["train"], "epochs": 2, "latency_every": 1}}))  # fmt: skip
    argv = [*search_args(setup, "run-records", "--generations", "1", "--prior", "records"), "--recipe", str(recipe)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = yaml.safe_load((in_root / "run-records" / "summary.yaml").read_text())
    assert summary["prior"].startswith("fit to ") and summary["prior"].endswith(" training latency records")
    assert f"latency prior: {summary['prior']}" in out and (in_root / "run-records" / "latency_prior.png").is_file()
