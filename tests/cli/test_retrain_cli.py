"""`autonad retrain`, `evaluate`, `predict` and `tune` on a new product line with other classes.

Set-up: a tiny supernet trained one epoch on a 4-class synthetic `folder:` dataset, a search-run
folder beside it (best_arch.yaml + summary.yaml, as `autonad search` leaves them), and a second
`folder:` dataset with one defect class (bg + defect), the "new product line".
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from autonad.cli import main
from autonad.data import SyntheticSource
from autonad.data.folder import write_folder
from autonad.space import HeadsArch, SearchSpace
from autonad.train.checkpoint import load_checkpoint
from autonad.train.recipe import Recipe
from autonad.train.subnet import RETRAIN_FORMAT, SUBNET_FORMAT

RECIPE = {"name": "retrain-cli-test", "dataset": "folder", "supernet": "tiny", "normalise": "dataset",
          "transform": {"size": [32, 32], "hflip": True},
          "train": {"epochs": 1, "batch_size": 4, "latency_every": 0, "val_every": 1, "seed": 3},
          "retrain": {"epochs": 3, "batch_size": 4, "lr": 2.0e-3, "warmup_epochs": 0, "dice_weight": 1.0,
                      "checkpoint_steps": 1, "seed": 3}}  # fmt: skip
METRICS = ("miou", "miou_fg", "mf1", "sample_miou", "seg_accuracy", "seg_recall", "seg_precision")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain-cli")
    four = write_folder(SyntheticSource(n=24, size=40, seed=1, defect_free=0.3), root / "four")
    two = write_folder(SyntheticSource(n=24, size=40, seed=2, defect_free=0.3), root / "two")
    for mask in (two / "masks").iterdir():  # one defect class: the new product line
        values = np.asarray(Image.open(mask))
        Image.fromarray(np.where(values > 0, 1, 0).astype(np.uint8)).save(mask)
    (two / "classes.txt").write_text("background\ndefect\n")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    supernet = root / "supernet"
    assert main(["train-supernet", "--dataset", f"folder:{four}", "--recipe", str(recipe), "--out", str(supernet),
                 "--threads", "1"]) == 0  # fmt: skip
    search = root / "search"
    search.mkdir()
    arch = SearchSpace.load("tiny").sample(random.Random(2), heads=HeadsArch(cap=False))
    arch.save(search / "best_arch.yaml")
    (search / "summary.yaml").write_text(yaml.safe_dump({"supernet": str(supernet / "checkpoint.pt")}))
    return {"root": root, "four": f"folder:{four}", "two": f"folder:{two}", "recipe": str(recipe),
            "arch": str(search / "best_arch.yaml"), "supernet": supernet / "checkpoint.pt"}  # fmt: skip


def retrain_args(setup, out: Path, *extra: str, dataset: str = "two") -> list[str]:
    return ["retrain", "--arch", setup["arch"], "--dataset", setup[dataset], "--recipe", setup["recipe"],
            "--out", str(out), "--threads", "1", *extra]  # fmt: skip


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def retrained(setup, tmp_path_factory):
    """The arch retrained with CaP on the 2-class data from the supernet found beside it, calibrated."""
    out = tmp_path_factory.mktemp("retrained") / "run"
    argv = retrain_args(setup, out, "--cap", "--calibrate", "recall>=0.5", "--format", "torchscript", "onnx",
                        "state-dict")  # fmt: skip
    assert main(argv) == 0
    return out


def test_retrain_on_a_new_product_line_with_other_classes(setup, retrained, capsys):
    out = retrained
    for name in ("best.pt", "checkpoint.pt", "history.jsonl", "split.json", "run.yaml", "metrics.json", "model.ts",
                 "model.onnx", "model.pt", "model.json"):  # fmt: skip
        assert (out / name).is_file(), name
    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["init"] == "supernet" and "seg_head.classifier.weight" in run["new_heads"]
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    best = load_checkpoint(out / "best.pt", SUBNET_FORMAT)
    scores = [h["val"]["miou"] for h in history]
    assert best["best"]["epoch"] == 1 + scores.index(max(scores))  # the first of the best, kept
    meta = json.loads((out / "model.json").read_text())
    # tiny has a multi-label CaP head, but with one defect class its class stage is trivial: not trained, not exported
    assert meta["classes"] == ["background", "defect"] and meta["outputs"] == "seg,cap"
    assert meta["decision"]["phi"] == "max_prob" and meta["decision"]["target"] == "recall>=0.5"
    assert meta["metrics"]["split"] == "test" and meta["metrics"]["cap_accuracy"] is not None
    assert json.loads((out / "metrics.json").read_text()) == meta["metrics"]
    report = (out / "report.html").read_text()  # the test metrics it shows are the ones just computed
    evaluation = json.loads((out / "evaluation" / "test.json").read_text())
    assert evaluation["metrics"] == {k: v for k, v in meta["metrics"].items() if k != "split"}
    assert "calibrated for recall&gt;=0.5" in report and '<section id="curves">' in report
    assert 'retraining <span class="meta">(3 epochs' in report and (out / "tensorboard").is_dir()


def test_exported_models_give_the_in_memory_metrics(setup, retrained, capsys):
    """The round trip: TorchScript, ONNX and the state dict give the metrics retrain reported."""
    want = json.loads((retrained / "metrics.json").read_text())
    for name in ("model.ts", "model.onnx", "model.pt"):
        report = retrained / f"{name}.json"
        argv = ["evaluate", "--model", str(retrained / name), "--dataset", setup["two"], "--split-file",
                str(retrained / "split.json"), "--out", str(report)]  # fmt: skip
        assert main(argv) == 0
        got = json.loads(report.read_text())
        assert got["tau"] == want["tau"] and got["phi"] == "max_prob"  # the calibrated decision travels
        for key in METRICS:
            assert got[key] == pytest.approx(want[key], abs=1e-9), (name, key)
        assert got["confusion"] == want["confusion"] or name == "model.onnx"
    assert "Sample_mIoU" in capsys.readouterr().out


def test_predict_uses_the_calibrated_decision(setup, retrained, tmp_path, capsys):
    images = sorted((Path(setup["two"][7:]) / "images").iterdir())[:3]
    assert main(["predict", "--model", str(retrained / "model.ts"), *map(str, images), "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "predictions.json").read_text())
    tau = json.loads((retrained / "model.json").read_text())["decision"]["tau"]
    assert [r["defective"] for r in results] == [r["score"] >= tau for r in results]
    assert all(r["cap"] is not None for r in results)
    assert (tmp_path / f"{images[0].stem}_overlay.png").is_file()


def test_evaluate_and_predict_take_a_decision_rule_and_qc_rules(setup, retrained, tmp_path, capsys):
    model = str(retrained / "model.ts")
    out = tmp_path / "gated.json"
    argv = ["evaluate", "--model", model, "--dataset", setup["two"], "--rule", "gated", "--cap-threshold", "0.5",
            "--min-area", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.replace("\n", " ")
    assert "rule gated" in printed and "instance recall" in printed
    record = json.loads(out.read_text())
    assert record["decision"]["rule"] == "gated" and record["instances"]["gt"] > 0
    assert record["decision"]["recall"] <= record["cap_recall"]  # gated: CaP must say defective too
    images = sorted((Path(setup["two"][7:]) / "images").iterdir())[:4]
    argv = ["predict", "--model", model, *map(str, images), "--out", str(tmp_path / "p"), "--rule", "cap",
            "--fail-area", "defect=3", "--pixel-size", "0.1"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert [r["defective"] for r in results] == [r["cap"] >= 0.5 for r in results]
    assert all(r["decision"]["rule"] == "cap" and r["decision"]["fail_area"] == {"defect": 3.0} for r in results)
    found = [i for r in results for i in r["instances"]]
    assert all(i["class"] == "defect" and i["area_mm2"] == pytest.approx(i["area"] * 0.01) for i in found)
    line = one_line_error(capsys, main([*argv[:-4], "--fail-area", "crack=3"]))
    assert "'crack', which is not a defect class" in line


def test_stop_and_resume_equals_an_uninterrupted_retrain(setup, retrained, tmp_path):
    out = tmp_path / "run"
    argv = retrain_args(setup, out, "--cap", "--format", "torchscript")
    assert main([*argv, "--max-epochs", "1"]) == 0
    assert load_checkpoint(out / "checkpoint.pt", RETRAIN_FORMAT)["state"]["epoch"] == 1
    assert main([*argv, "--resume", "--calibrate", "recall>=0.5", "--per-class"]) == 0  # the calibration may change
    want = load_checkpoint(retrained / "checkpoint.pt", RETRAIN_FORMAT)
    got = load_checkpoint(out / "checkpoint.pt", RETRAIN_FORMAT)
    untimed = [[{k: v for k, v in h.items() if k != "images_per_s"} for h in c["history"]] for c in (got, want)]
    assert untimed[0] == untimed[1]
    assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"])
    decision = json.loads((out / "model.json").read_text())["decision"]
    assert list(decision["class_tau"]) == ["defect"] and decision["target"] == "recall>=0.5"
    assert set(decision.get("pixel_thresholds", {})) <= {"defect"}
    images = sorted((Path(setup["two"][7:]) / "images").iterdir())[:2]
    assert main(["predict", "--model", str(out / "model.ts"), *map(str, images), "--out", str(tmp_path / "p")]) == 0
    results = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert [r["defective"] for r in results] == [r["score"] >= decision["class_tau"]["defect"] for r in results]


def test_retrain_from_scratch_on_the_supernets_classes(setup, tmp_path, capsys):
    out = tmp_path / "scratch"
    assert main(retrain_args(setup, out, "--init", "scratch", "--epochs", "1", dataset="four")) == 0
    assert "from scratch" in capsys.readouterr().out.replace("\n", " ")
    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["init"] == "scratch" and run["new_heads"] == []
    recipe = Recipe.load(setup["recipe"])
    assert load_checkpoint(out / "checkpoint.pt", RETRAIN_FORMAT)["recipe"]["retrain"]["epochs"] == 1
    assert recipe.retrain.epochs == 3


def test_bad_input_is_one_line(setup, retrained, tmp_path, capsys):
    # a model trained on other classes, without a retrain
    line = one_line_error(capsys, main(["evaluate", "--model", str(retrained / "model.ts"), "--dataset",
                                        setup["four"]]))  # fmt: skip
    assert "predicts ['background', 'defect']" in line and "autonad retrain" in line
    # a model file of another format: a supernet checkpoint, a text file
    line = one_line_error(capsys, main(["evaluate", "--model", str(setup["supernet"]), "--dataset", setup["two"]]))
    assert "'autonad-supernet/1' checkpoint, expected 'autonad-model/1'" in line
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    line = one_line_error(capsys, main(["predict", "--model", str(text), "x.png"]))
    assert "not a readable ONNX model" in line
    # an image that is not an image
    fake = tmp_path / "photo.png"
    fake.write_text("hello")
    argv = ["predict", "--model", str(retrained / "model.ts"), str(fake), "--out", str(tmp_path / "predictions")]
    line = one_line_error(capsys, main(argv))
    assert "photo.png" in line
    # another arch into an existing run, --init supernet with no supernet known, --cap without a CaP head
    other = SearchSpace.load("tiny").smallest()
    other.save(tmp_path / "other.yaml")
    argv = ["retrain", "--arch", str(tmp_path / "other.yaml"), "--dataset", setup["two"], "--recipe",
            setup["recipe"], "--threads", "1"]  # fmt: skip
    line = one_line_error(capsys, main([*argv, "--supernet", str(setup["supernet"]), "--out", str(retrained),
                                        "--resume"]))  # fmt: skip
    assert "retrains another arch" in line
    line = one_line_error(capsys, main([*argv, "--init", "supernet", "--out", str(tmp_path / "x")]))
    assert "no supernet known" in line
    line = one_line_error(capsys, main([*argv, "--calibrate", "recall"]))
    assert "bad calibration target 'recall'" in line
    # a device without a table is refused before any training (nothing is written)
    line = one_line_error(capsys, main([*argv, "--init", "scratch", "--hw", "tpu9", "--out", str(tmp_path / "hw")]))
    assert "unknown device 'tpu9'" in line and not (tmp_path / "hw").exists()


def test_tune_writes_the_best_recipe(setup, ray_session, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["tune", "--arch", setup["arch"], "--dataset", setup["two"], "--recipe", setup["recipe"], "--epochs", "2",
            "--samples", "3", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((out / "trials.json").read_text())
    assert len(rows) == 3 and all(1 <= r["epochs"] <= 2 for r in rows)
    best = Recipe.load(out / "best_recipe.yaml")
    assert rows == sorted(rows, key=lambda r: (-r["best_miou"], r["trial"]))  # best first, ties by name
    top = rows[0]
    assert best.retrain.lr == pytest.approx(top["lr"]) and best.retrain.dice_weight == pytest.approx(top["dice_weight"])
    assert best.name == "retrain-cli-test-tuned" and best.retrain.epochs == 2
    assert "tuning trials" in capsys.readouterr().out
    line = one_line_error(capsys, main(argv))
    assert "already holds a tuning study" in line
    # a finished study resumes to the same result without new trials
    (out / "best_recipe.yaml").unlink()
    assert main([*argv, "--resume"]) == 0
    assert json.loads((out / "trials.json").read_text()) == rows
    assert Recipe.load(out / "best_recipe.yaml").retrain == best.retrain


def test_a_retrain_on_all_defective_images_leaves_the_untrained_presence_stage_out(setup, tmp_path, capsys):
    """Every image defective: presence is trivial and left out; the class stage (3 defect classes) is
    trained and exported alone."""
    data = write_folder(SyntheticSource(n=24, size=40, seed=4, defect_free=0.0), tmp_path / "all-defective")
    out = tmp_path / "run"
    argv = ["retrain", "--arch", setup["arch"], "--dataset", f"folder:{data}", "--recipe", setup["recipe"],
            "--out", str(out), "--threads", "1", "--cap", "--init", "scratch", "--epochs", "1"]  # fmt: skip
    assert main(argv) == 0
    assert "CaP presence output left out" in capsys.readouterr().out.replace("\n", " ")
    best = load_checkpoint(out / "best.pt", SUBNET_FORMAT)
    assert best["arch"]["heads"] == {"cap": False, "classes": True}
    assert any(k.startswith("cap_head.") for k in best["model"])
    steps = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert steps and all("classes" in h and "presence" not in h for h in steps if "seg" in h)
    model = json.loads((out / "model.json").read_text())
    assert model["outputs"] == "seg,cls"


def test_a_retrain_with_one_defect_class_trains_presence_only(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(retrain_args(setup, out, "--cap", "--init", "scratch", "--epochs", "1")) == 0
    assert "CaP class stage off" in capsys.readouterr().out.replace("\n", " ")
    assert json.loads((out / "model.json").read_text())["outputs"] == "seg,cap"


@pytest.mark.slow
def test_retrain_on_two_ray_train_workers_trains_the_same_schedule_and_finishes_the_run(setup, tmp_path):
    """`--workers 2` without an address: a local Ray of 2 CPUs, DDP over gloo. The steps are one process's
    (the batch is global); the losses are close, not equal: the decoder's dropout draws a mask per rank,
    and Dice is a per-batch ratio (the exact comparison is tests/train/test_ray_train.py's)."""
    import os
    import subprocess
    import sys

    one, two = tmp_path / "one", tmp_path / "two"
    assert main(retrain_args(setup, one)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "autonad", *retrain_args(setup, two), "--workers", "2"], env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 Ray Train workers on a local Ray" in result.stdout
    assert yaml.safe_load((two / "run.yaml").read_text())["world_size"] == 2
    for name in ("best.pt", "metrics.json", "model.ts", "model.onnx", "report.html"):
        assert (two / name).is_file(), name
    ref, ray = (load_checkpoint(run / "checkpoint.pt", RETRAIN_FORMAT)["history"] for run in (one, two))
    assert [h["step"] for h in ray] == [h["step"] for h in ref]
    assert max(abs(h["loss"] - g["loss"]) / h["loss"] for h, g in zip(ref, ray)) <= 0.2


def test_an_ensemble_of_retrained_runs_is_the_weighted_mixture_of_its_members(setup, retrained, tmp_path, capsys):
    from autonad.export import load_exported

    other = tmp_path / "other"
    assert (
        main(retrain_args(setup, other, "--cap", "--init", "scratch", "--epochs", "1", "--format", "torchscript")) == 0
    )
    out = tmp_path / "ensemble"
    argv = ["ensemble", "--members", str(retrained), str(other), "--dataset", setup["two"], "--out", str(out),
            "--calibrate", "recall>=0.5", "--rule", "agree"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.replace("\n", " ")
    assert "ensemble members" in printed and "rule agree" in printed
    meta = json.loads((out / "model.json").read_text())
    weights = [m["weight"] for m in meta["ensemble"]["members"]]
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0) and meta["outputs"] == "seg,cap"
    assert (
        meta["decision"]["rule"] == "agree" and (out / "calibration.png").is_file() and (out / "report.html").is_file()
    )
    x = torch.randn(2, 3, *meta["input_size"], generator=torch.Generator().manual_seed(3))
    members = [load_exported(run / "model.ts")[0] for run in (retrained, other)]
    outs = [m(x) for m in members]
    want_seg = sum(w * o["seg"].softmax(1) for w, o in zip(weights, outs))
    want_cap = sum(w * torch.sigmoid(o["cap"]) for w, o in zip(weights, outs))
    for name in ("model.ts", "model.onnx"):  # the ONNX file runs in onnxruntime
        got = load_exported(out / name)[0](x)
        assert (got["seg"].softmax(1) - want_seg).abs().max() <= 1e-5, name
        assert (torch.sigmoid(got["cap"]) - want_cap).abs().max() <= 1e-5, name
    assert main(["evaluate", "--model", str(out / "model.onnx"), "--dataset", setup["two"]]) == 0
    line = one_line_error(capsys, main(["ensemble", "--members", str(retrained), str(retrained), "--dataset",
                                        setup["two"], "--out", str(tmp_path / "e2")]))  # fmt: skip
    assert "at least 2 different retrain runs" in line
