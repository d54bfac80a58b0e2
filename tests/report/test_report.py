"""report.html of a search run: every section, nothing fetched from the network, honest evaluation."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

from autonad.cli import main
from autonad.report import REPORT_NAME, load_evaluation, run_split_file, write_report
from autonad.report.build import file_rows
from autonad.report.evaluation import ImageResult, failure_rates, pick_failures

SECTIONS = ("dataset", "recipe", "device", "curves", "search", "pareto", "prior", "arch", "metrics", "confusion",
            "failures", "files")  # fmt: skip


def test_search_writes_a_self_contained_report(search_run):
    run, _ = search_run
    html = (run / REPORT_NAME).read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources), sources
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") >= 7  # curves x1, progress, pareto, prior, arch, confusion, failures
    summary = yaml.safe_load((run / "summary.yaml").read_text())
    assert summary["best"]["hash"][:8] in html and summary["why"] in html


def test_report_evaluation_is_the_evaluate_commands(search_run, tmp_path):
    run, dataset = search_run
    record = load_evaluation(run)
    split = json.loads(run_split_file(run).read_text())
    assert record["split"] == "test" and len(record["images"]) == len(split["splits"]["test"])
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--model", str(run / "model.ts"), "--dataset", dataset, "--split-file",
            str(run_split_file(run)), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(out.read_text())["miou"] == pytest.approx(record["metrics"]["miou"], abs=1e-9)
    for kind in record["failures"].values():
        for item in kind:
            assert (run / "evaluation" / item["picture"]).is_file()


def test_files_are_listed_with_their_checksums(search_run):
    run, _ = search_run
    rows = {r["name"]: r for r in file_rows(run)}
    assert {"model.ts", "model.onnx", "model.json", "best_arch.yaml", "summary.yaml"} <= set(rows)
    assert rows["model.onnx"]["sha256"] == hashlib.sha256((run / "model.onnx").read_bytes()).hexdigest()


def test_report_command_rewrites_and_refuses_bad_input(search_run, tmp_path, capsys):
    run, dataset = search_run
    before = (run / "evaluation" / "test.json").read_bytes()
    assert main(["report", str(run)]) == 0  # from files only: the evaluation is kept
    assert (run / "evaluation" / "test.json").read_bytes() == before
    assert f"report: {run / REPORT_NAME}" in capsys.readouterr().out
    for argv, message in [
        (["report", str(tmp_path / "nope")], "no such run folder"),
        (["report", str(tmp_path)], "not a search, retrain or evaluation folder"),
        (["report", str(run), "--evaluate"], "--evaluate: give the run's --dataset"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    (tmp_path / "summary.yaml").write_text("- a list\n")
    assert main(["report", str(tmp_path)]) == 2
    assert "expected a mapping of keys" in capsys.readouterr().err


def test_report_without_an_evaluation_says_so(search_run, tmp_path):
    run, _ = search_run
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("summary.yaml", "best_arch.yaml", "model.json", "history.jsonl", "pareto.png"):
        (copy / name).write_bytes((run / name).read_bytes())
    html = write_report(copy).read_text()
    assert "not evaluated on a test split" in html and '<section id="failures">' in html
    assert "no latency_prior.png in this folder" in html and 'alt="latency prior heatmap"' not in html
    assert 'alt="Pareto front"' in html  # the files it has still show


def test_evaluate_report_folder_shows_the_split_just_evaluated(search_run, tmp_path):
    run, dataset = search_run
    out = tmp_path / "eval"
    for split in ("test", "val"):
        argv = ["evaluate", "--model", str(run / "model.onnx"), "--dataset", dataset, "--split", split,
                "--split-file", str(run_split_file(run)), "--report", str(out)]  # fmt: skip
        assert main(argv) == 0
        html = (out / REPORT_NAME).read_text()
        record = load_evaluation(out, split)
        assert "evaluation: model.onnx" in html and f"of folder {split};" in html
        counts = failure_rates(record["images"])
        assert f"{counts['missed']} missed" in html and len(record["images"]) == record["metrics"]["num_samples"]


def test_the_image_counts_agree_with_the_sample_metrics(search_run):
    run, _ = search_run
    record = load_evaluation(run)
    counts, m = failure_rates(record["images"]), record["metrics"]["sample_counts"]
    assert counts["missed"] == m["fn"] and counts["false_alarms"] == m["fp"]
    assert counts["defective"] == m["tp"] + m["fn"]


def test_older_or_partial_run_files_render_or_refuse_in_one_line(search_run, tmp_path, capsys):
    run, _ = search_run
    copy = tmp_path / "old"
    copy.mkdir()
    summary = yaml.safe_load((run / "summary.yaml").read_text())
    (copy / "summary.yaml").write_text(yaml.safe_dump({k: v for k, v in summary.items() if k not in ("best", "why")}))
    assert "not a search run" in write_report(copy).read_text()
    (copy / "evaluation").mkdir()
    (copy / "evaluation" / "test.json").write_text(json.dumps({"split": "test"}))
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "incomplete evaluation record (no 'dataset')" in err and len(err.splitlines()) == 1


def test_failures_pick_the_worst_of_each_kind():
    r = [ImageResult("a", 0.9, 10, 9, True, True), ImageResult("b", 0.1, 50, 5, True, True),
         ImageResult("c", None, 30, 0, True, False), ImageResult("d", 0.0, 0, 7, False, True),
         ImageResult("e", None, 0, 0, False, False)]  # fmt: skip
    picked = {k: [x.id for x in v] for k, v in pick_failures(r, 2).items()}
    assert picked == {"lowest_iou": ["c", "b"], "missed": ["c"], "false_alarm": ["d"]}
