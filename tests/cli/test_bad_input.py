"""Bad input to every command: exit 2, exactly one stderr line naming the file or flag, no traceback,
and a finished run left byte for byte as it was (SPEC: refusals come before the work)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from autonad.cli import main


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def refused(capsys, argv: list[str], message: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert message in err, err
    return err


@pytest.fixture(scope="module")
def ctx(search_run, tmp_path_factory) -> dict:
    """Paths of the shared finished search and a few bad files made once."""
    run, dataset = search_run
    root = run.parent
    bad = tmp_path_factory.mktemp("bad-files")
    (bad / "a_file").write_text("not a folder")
    (bad / "bad_key.yaml").write_text(yaml.safe_dump({"name": "x", "dataset": "folder", "supernet": "tiny",
                                                       "trian": {"epochs": 1}}))  # fmt: skip
    (bad / "bad_syntax.yaml").write_text("name: [unclosed\n")
    arch = yaml.safe_load((run / "best_arch.yaml").read_text())
    arch["stages"][0]["blocks"][0]["op"] = "nope"
    (bad / "bad_op.yaml").write_text(yaml.safe_dump(arch))
    (bad / "lonely_arch.yaml").write_text((run / "best_arch.yaml").read_text())  # no summary.yaml beside it
    (bad / "list_run").mkdir()
    (bad / "list_run" / "summary.yaml").write_text("- a\n- b\n")
    (bad / "notes.png").write_text("not an image")
    two = bad / "two-classes"
    (two / "images").mkdir(parents=True)
    (two / "masks").mkdir()
    for i in range(6):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(two / "images" / f"{i}.png")
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(two / "masks" / f"{i}.png")
    (two / "classes.txt").write_text("background\nscratch\n")
    broken = bad / "broken-mask"
    shutil.copytree(two, broken)
    (broken / "masks" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    jetson = bad / "jetson.yaml"
    assert main(["profile", "--hw", "jetson", "--roofline", "--search-space", "tiny", "--input-size", "32x32",
                 "--classes", "4", "--out", str(jetson)]) == 0  # fmt: skip
    return {"run": run, "dataset": dataset, "jetson": str(jetson), "recipe": str(root / "recipe.yaml"),
            "table": str(root / "test-gpu.yaml"),
            "bad": bad, "file": bad / "a_file", "model": str(run / "model.ts"), "arch": str(run / "best_arch.yaml"),
            "two": f"folder:{two}", "broken": f"folder:{broken}"}  # fmt: skip


def search(c, *extra):
    return ["search", "--dataset", c["dataset"], "--recipe", c["recipe"], "--hw", c["table"], "--workers", "0",
            "--out", str(c["bad"] / "new-search"), *extra]  # fmt: skip


def retrain(c, *extra):
    return ["retrain", "--arch", c["arch"], "--dataset", c["dataset"], "--recipe", c["recipe"],
            "--out", str(c["bad"] / "new-retrain"), *extra]  # fmt: skip


def ensemble(c, *extra):
    return ["ensemble", "--run", str(c["run"]), "--dataset", c["dataset"], "--out", str(c["bad"] / "ens"), *extra]


CASES = {
    # search
    "search-unknown-device": (lambda c: [*search(c), "--hw", "nosuchdevice"], "unknown device 'nosuchdevice'"),
    "search-unknown-dataset": (lambda c: [*search(c), "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
    "search-missing-root": (lambda c: [*search(c), "--dataset", "folder:/nonexistent/line"], "/nonexistent/line"),
    "search-unknown-recipe": (lambda c: [*search(c), "--recipe", "nosuchrecipe"], "nosuchrecipe"),
    "search-recipe-bad-key": (lambda c: [*search(c), "--recipe", str(c["bad"] / "bad_key.yaml")], "trian"),
    "search-recipe-bad-yaml": (lambda c: [*search(c), "--recipe", str(c["bad"] / "bad_syntax.yaml")], "not valid YAML"),
    "search-unknown-supernet": (lambda c: [*search(c), "--supernet", "nosuchnet"], "unknown supernet 'nosuchnet'"),
    "search-prior-temperature-0": (lambda c: [*search(c), "--prior-temperature", "0"], "prior temperature"),
    "search-unsatisfiable-latency": (lambda c: [*search(c), "--max-latency-ms", "1e-9"], "no architecture"),
    "search-unsatisfiable-params": (lambda c: [*search(c), "--max-params", "10"], "--max-params 10"),
    "search-unknown-fitness": (lambda c: [*search(c), "--fitness", "bogus"], "unknown term 'bogus'"),
    "search-latency-weight-text": (lambda c: [*search(c), "--latency-weight", "lots"], "--latency-weight"),
    "search-latency-share-100": (lambda c: [*search(c), "--latency-weight", "100%"], "--latency-weight"),
    "search-tolerance-with-a-weight": (
        lambda c: [*search(c), "--latency-weight", "0.01", "--tolerance", "0.5"],
        "--tolerance picks from the Pareto front",
    ),
    "search-unknown-objective": (lambda c: [*search(c), "--objective", "best"], "--objective"),
    "search-unknown-runtime": (lambda c: [*search(c), "--runtime", "tvm"], "--runtime"),
    "search-zero-population": (lambda c: [*search(c), "--population", "0"], "--population"),
    "search-budget-text": (lambda c: [*search(c), "--budget", "soon"], "--budget"),
    "search-existing-run": (lambda c: [*search(c), "--out", str(c["run"])], "holds a search already"),
    "search-resume-other-device": (
        lambda c: [*search(c), "--out", str(c["run"]), "--resume", "--hw", c["jetson"]],
        'extra.hw: "rtx3090" then, "jetson-xavier-nx" now',
    ),
    "search-resume-other-settings": (
        lambda c: [*search(c), "--out", str(c["run"]), "--resume", "--seed", "9"],
        "config.seed",
    ),
    "search-out-is-a-file": (lambda c: [*search(c), "--out", str(c["file"] / "run")], "a_file"),
    # retrain and tune
    "retrain-missing-arch": (lambda c: [*retrain(c), "--arch", "missing_arch.yaml"], "missing_arch.yaml"),
    "retrain-arch-bad-yaml": (lambda c: [*retrain(c), "--arch", str(c["bad"] / "bad_syntax.yaml")], "not valid YAML"),
    "retrain-arch-unknown-op": (lambda c: [*retrain(c), "--arch", str(c["bad"] / "bad_op.yaml")], "'nope'"),
    "retrain-unknown-device": (lambda c: [*retrain(c), "--hw", "nosuchdevice"], "unknown device 'nosuchdevice'"),
    "retrain-no-supernet-known": (
        lambda c: [*retrain(c), "--arch", str(c["bad"] / "lonely_arch.yaml"), "--init", "supernet"],
        "no supernet known",
    ),  # fmt: skip
    "retrain-missing-supernet": (lambda c: [*retrain(c), "--supernet", "missing.pt"], "missing.pt"),
    "retrain-budget-twice": (lambda c: [*retrain(c), "--epochs", "2", "--steps", "3"], "give the retraining budget"),
    "retrain-bad-calibration": (lambda c: [*retrain(c), "--calibrate", "nonsense"], "bad calibration target"),
    "retrain-unknown-dataset": (lambda c: [*retrain(c), "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
    "retrain-out-is-a-file": (lambda c: [*retrain(c), "--out", str(c["file"] / "run")], "a_file"),
    "tune-minutes-budget": (
        lambda c: [
            "tune",
            "--arch",
            c["arch"],
            "--dataset",
            c["dataset"],
            "--recipe",
            c["recipe"],
            "--budget",
            "5m",
            "--out",
            str(c["bad"] / "tune"),
        ],
        "ASHA",
    ),
    "tune-bad-mask": (
        lambda c: [
            "tune",
            "--arch",
            c["arch"],
            "--dataset",
            c["broken"],
            "--recipe",
            c["recipe"],
            "--epochs",
            "1",
            "--out",
            str(c["bad"] / "tune"),
        ],
        "3.png",
    ),  # fmt: skip
    # train-supernet
    "train-unknown-recipe": (lambda c: ["train-supernet", "--recipe", "nosuchrecipe"], "nosuchrecipe"),
    "train-bad-steps": (lambda c: ["train-supernet", "--steps", "-3"], "--steps"),
    "train-out-is-a-file": (
        lambda c: [
            "train-supernet",
            "--dataset",
            c["dataset"],
            "--recipe",
            c["recipe"],
            "--out",
            str(c["file"] / "sn"),
        ],
        "a_file",
    ),  # fmt: skip
    # evaluate and predict
    "evaluate-missing-model": (
        lambda c: ["evaluate", "--model", "missing.ts", "--dataset", c["dataset"]],
        "missing.ts",
    ),
    "evaluate-not-a-model": (
        lambda c: ["evaluate", "--model", c["arch"], "--dataset", c["dataset"]],
        "not an exported model",
    ),
    "evaluate-other-classes": (
        lambda c: ["evaluate", "--model", c["model"], "--dataset", c["two"]],
        "retrain the arch",
    ),
    "evaluate-missing-split-file": (
        lambda c: ["evaluate", "--model", c["model"], "--dataset", c["dataset"], "--split-file", "missing.json"],
        "missing.json",
    ),  # fmt: skip
    "evaluate-negative-tau": (
        lambda c: ["evaluate", "--model", c["model"], "--dataset", c["dataset"], "--tau", "-1"],
        "--tau",
    ),
    "evaluate-unknown-phi": (
        lambda c: ["evaluate", "--model", c["model"], "--dataset", c["dataset"], "--phi", "x"],
        "--phi",
    ),
    "evaluate-out-is-a-file": (
        lambda c: ["evaluate", "--model", c["model"], "--dataset", c["dataset"], "--out", str(c["file"] / "m.json")],
        "a_file",
    ),  # fmt: skip
    "predict-missing-model": (
        lambda c: ["predict", "--model", "missing.ts", str(c["bad"] / "notes.png")],
        "missing.ts",
    ),
    "predict-unreadable-image": (
        lambda c: ["predict", "--model", c["model"], str(c["bad"] / "notes.png"), "--out", str(c["bad"] / "pred")],
        "not a readable image file",
    ),  # fmt: skip
    "predict-missing-image": (
        lambda c: ["predict", "--model", c["model"], "gone.png", "--out", str(c["bad"] / "pred")],
        "gone.png",
    ),  # fmt: skip
    "predict-out-is-a-file": (
        lambda c: ["predict", "--model", c["model"], str(c["bad"] / "notes.png"), "--out", str(c["file"] / "pred")],
        "a_file",
    ),  # fmt: skip
    # ensemble
    "ensemble-not-a-search-run": (
        lambda c: ["ensemble", "--run", str(c["bad"]), "--dataset", c["dataset"], "--out", str(c["bad"] / "ens")],
        "no history.jsonl",
    ),  # fmt: skip
    "ensemble-too-many-members": (
        lambda c: [
            "ensemble",
            "--run",
            str(c["run"]),
            "--k",
            "99",
            "--dataset",
            c["dataset"],
            "--out",
            str(c["bad"] / "ens"),
        ],
        "an ensemble takes 2 to 6 members, got 99",
    ),  # fmt: skip
    "ensemble-more-than-the-search-has": (
        lambda c: ensemble(c, "--k", "2", "--max-latency-ms", "1e-6"),
        "different operator/width families within 1e-06 ms",
    ),
    "ensemble-member-not-retrained": (
        lambda c: [
            "ensemble",
            "--members",
            str(c["run"]),
            str(c["bad"]),
            "--dataset",
            c["dataset"],
            "--out",
            str(c["bad"] / "ens"),
        ],
        "not a finished retrain run (no best.pt)",
    ),  # fmt: skip
    # export and report
    "export-missing-run": (lambda c: ["export", "--run", "no_such_run"], "no_such_run"),
    "export-summary-is-a-list": (lambda c: ["export", "--run", str(c["bad"] / "list_run")], "expected a mapping"),
    "export-arch-without-supernet": (lambda c: ["export", "--arch", c["arch"]], "--arch needs --supernet"),
    "export-unknown-format": (lambda c: ["export", "--run", str(c["run"]), "--format", "tflite"], "--format"),
    "report-missing-run": (lambda c: ["report", "no_such_run"], "no such run folder"),
    "report-not-a-run": (lambda c: ["report", str(c["bad"] / "two-classes")], "not a search, retrain"),
    "report-evaluate-without-dataset": (lambda c: ["report", str(c["run"]), "--evaluate"], "--dataset"),
    # latency, profile
    "latency-unknown-device": (lambda c: ["latency", "--hw", "nosuchdevice", "--arch", c["arch"]], "nosuchdevice"),
    "latency-missing-arch": (
        lambda c: ["latency", "--hw", c["table"], "--arch", "missing_arch.yaml"],
        "missing_arch.yaml",
    ),
    "profile-runtime-on-gpu": (lambda c: ["profile", "--hw", "x", "--device", "cuda"], "--device cuda"),
    "profile-unknown-space": (
        lambda c: ["profile", "--hw", "x", "--roofline", "--search-space", "nosuchspace"],
        "nosuchspace",
    ),
    # datasets, space, arch
    "datasets-unknown": (lambda c: ["datasets", "inspect", "nosuch"], "unknown dataset 'nosuch'"),
    "datasets-preview-out-is-a-file": (
        lambda c: ["datasets", "preview", c["dataset"], "--out", str(c["file"] / "p.png")],
        "a_file",
    ),  # fmt: skip
    "space-unknown": (lambda c: ["space", "show", "nosuchspace"], "nosuchspace"),
    "arch-info-missing": (lambda c: ["arch", "info", "missing_arch.yaml", "--space", "tiny"], "missing_arch.yaml"),
    "arch-sample-unknown-space": (lambda c: ["arch", "sample", "--space", "nosuchspace"], "nosuchspace"),
    "arch-sample-out-is-a-file": (
        lambda c: ["arch", "sample", "--space", "tiny", "--out", str(c["file"] / "a.yaml")],
        "a_file",
    ),
    "unknown-command": (lambda c: ["serach"], "invalid choice: 'serach'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_in_one_line_and_nothing_changes(ctx, case, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # runs/ folders a refused command might create would land here
    argv, message = CASES[case]
    before = snapshot(ctx["run"])
    try:
        refused(capsys, argv(ctx), message)
    except SystemExit as e:  # argparse errors exit from inside main()
        err = capsys.readouterr().err.strip()
        assert e.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert snapshot(ctx["run"]) == before
    assert not (tmp_path / "runs").exists() and not (ctx["bad"] / "new-search").exists()
    assert not (ctx["bad"] / "new-retrain").exists() and not (ctx["bad"] / "tune").exists()


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60


# -- predict: every good image is written, same stems do not overwrite each other ---------------
def test_predict_writes_every_good_image_and_lists_the_bad(ctx, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((40, 40, 3), 90 if folder == "a" else 160, np.uint8)).save(tmp_path / folder / "p.png")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    out = tmp_path / "pred"
    images = [str(tmp_path / "a" / "p.png"), str(bad), str(tmp_path / "b" / "p.png")]
    refused(capsys, ["predict", "--model", ctx["model"], *images, "--out", str(out)], "1 of 3 images unreadable")
    record = json.loads((out / "predictions.json").read_text())
    assert [p["output"] for p in record["predictions"]] == ["a_p", "b_p"]
    assert [b["image"] for b in record["unreadable"]] == [str(bad)]
    assert {p.name for p in out.glob("*_overlay.png")} == {"a_p_overlay.png", "b_p_overlay.png"}
    a, b = (np.asarray(Image.open(out / f"{n}_overlay.png")) for n in ("a_p", "b_p"))
    assert not np.array_equal(a, b)  # the second did not overwrite the first


# -- resume identity covers the data -----------------------------------------------------------
@pytest.fixture
def trained(ctx, tmp_path):
    """A one-epoch supernet run on a copy of the shared data folder."""
    data = tmp_path / "data"
    shutil.copytree(ctx["dataset"].partition(":")[2], data)
    out = tmp_path / "sn"
    argv = ["train-supernet", "--dataset", f"folder:{data}", "--recipe", ctx["recipe"], "--out", str(out),
            "--steps", "8", "--max-epochs", "1", "--no-tensorboard"]  # fmt: skip
    assert main(argv) == 0
    return data, out, argv


def test_resume_on_another_root_is_refused(trained, tmp_path, capsys):
    data, out, argv = trained
    other = tmp_path / "other"
    shutil.copytree(data, other)
    before = snapshot(out)
    resume = [*argv, "--resume"]
    resume[resume.index(f"folder:{data}")] = f"folder:{other}"
    refused(capsys, resume, f"was trained on {data.resolve()}, not on {other.resolve()}")
    assert snapshot(out) == before


def test_resume_with_added_images_is_refused(trained, capsys):
    data, out, argv = trained
    first = sorted((data / "images").iterdir())[0]
    shutil.copy(first, data / "images" / "zz_new.png")
    shutil.copy(data / "masks" / first.name, data / "masks" / "zz_new.png")
    before = snapshot(out)
    refused(capsys, [*argv, "--resume"], "1 images added (first: zz_new)")
    assert snapshot(out) == before


def test_resume_with_changed_files_is_refused(trained, capsys):
    data, out, argv = trained
    mask = sorted((data / "masks").iterdir())[0]
    values = np.asarray(Image.open(mask)).copy()
    values[:5, :5] = 1
    Image.fromarray(values).save(mask)
    refused(capsys, [*argv, "--resume"], "the dataset's files have changed")


def test_a_corrupt_validation_image_is_refused_before_training(ctx, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ctx["dataset"].partition(":")[2], data)
    victim = sorted((data / "images").iterdir())[-1]
    victim.write_bytes(victim.read_bytes()[:60])
    out = tmp_path / "sn"
    argv = ["train-supernet", "--dataset", f"folder:{data}", "--recipe", ctx["recipe"], "--out", str(out),
            "--steps", "8"]  # fmt: skip
    refused(capsys, argv, victim.name)
    assert not (out / "checkpoint.pt").exists()


def test_a_dataloader_worker_error_is_one_line(ctx, tmp_path, capsys, monkeypatch):
    """A file that breaks while DataLoader workers read it (the check at the start passed): the
    worker's traceback is not shown, its one line is."""
    from autonad.data import SegSource
    from autonad.errors import AutoNADError

    recipe = yaml.safe_load(Path(ctx["recipe"]).read_text())
    recipe["train"]["workers"] = 2
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))

    def failing(self, sample_id):
        raise AutoNADError(f"{sample_id}.png: unreadable or corrupt image (simulated)")

    monkeypatch.setattr(SegSource, "load_image", failing)  # verify() decodes through check_sample, not this
    argv = ["train-supernet", "--dataset", ctx["dataset"], "--recipe", str(tmp_path / "r.yaml"), "--out",
            str(tmp_path / "sn"), "--steps", "4", "--no-tensorboard"]  # fmt: skip
    refused(capsys, argv, "unreadable or corrupt image (simulated)")


def test_retrain_resume_on_other_data_is_refused_and_keeps_its_results(ctx, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ctx["dataset"].partition(":")[2], data)
    out = tmp_path / "rt"
    argv = ["retrain", "--arch", ctx["arch"], "--dataset", f"folder:{data}", "--recipe", ctx["recipe"],
            "--out", str(out), "--epochs", "2", "--max-epochs", "1", "--format", "torchscript",
            "--no-tensorboard"]  # fmt: skip
    assert main(argv) == 0
    before = snapshot(out)
    first = sorted(p.name for p in (data / "images").iterdir())[0]
    (data / "images" / first).unlink()
    (data / "masks" / first).unlink()
    refused(capsys, [*argv, "--resume"], "1 removed (first:")
    assert snapshot(out) == before


def test_evaluate_covers_every_good_image_and_lists_the_bad(ctx, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ctx["dataset"].partition(":")[2], data)
    split = json.loads(next((ctx["run"].parent / "runs").glob("supernet/*/split.json")).read_text())
    victim = split["splits"]["test"][0]
    image = next((data / "images").glob(f"{victim}.*"))
    image.write_bytes(b"not an image")
    out = tmp_path / "m.json"
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({**split, "root": str(data)}))
    argv = ["evaluate", "--model", ctx["model"], "--dataset", f"folder:{data}", "--split-file", str(split_file),
            "--out", str(out)]  # fmt: skip
    refused(capsys, argv, f"1 images of folder test unreadable (the metrics above cover the other "
                          f"{len(split['splits']['test']) - 1}), first: {image}")  # fmt: skip
    record = json.loads(out.read_text())
    assert record["num_samples"] == len(split["splits"]["test"]) - 1 and len(record["unreadable"]) == 1
