"""The benchmark suite's driver and the results-page renderer (the benchmarks themselves are not
tests: they take minutes to hours and report figures)."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_suite_lists_every_benchmark_script_once():
    out = bench("bench/run_all.py", "--list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # thin_defects.py generates a dataset that thin_defect_search.py benchmarks on; gpu_check.py needs a CUDA
    # device (bench/gpu_check.sh runs it there)
    helpers = {"common", "run_all", "report", "thin_defects", "gpu_check"}
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py")} - helpers
    assert {re.search(r"bench/(\w+)\.py", line).group(1) for line in lines} == scripts
    names = [line[6:].split()[0] for line in lines]  # "done  NAME ..." or "      NAME ..."
    assert len(set(names)) == len(lines)  # one results file per entry


def test_results_page_cites_a_command_and_json_for_every_figure(tmp_path):
    out = bench("bench/report.py", "--out", str(tmp_path / "results.md"))
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "results.md").read_text()
    for heading in ("Headline", "NEU-Seg", "Magnetic Tile", "Ablations", "CaP on/off", "Kendall tau",
                    "Latency model", "Search", "Supernet overhead", "Export round trip", "On a GPU"):  # fmt: skip
        assert heading in page
    results = ROOT / "bench" / "results"
    cited = re.findall(r"\(\.\./bench/results/([\w-]+)\.json\)", page)
    assert cited and all((results / f"{name}.json").is_file() for name in cited)
    for name in cited:  # each cited file is valid JSON and the page shows the command that wrote it
        data = json.loads((results / f"{name}.json").read_text())
        assert "command" not in data or f"`{data['command']}`" in page
    missing = {p.stem for p in results.glob("*.json")} - set(cited)
    assert not missing, f"results not on the page: {missing}"
    for image in re.findall(r"\]\(img/([\w.-]+)\)", page):
        assert (tmp_path / "img" / image).stat().st_size > 0


def test_pipeline_refuses_a_generation_count_per_device_that_does_not_match(tmp_path):
    out = bench("bench/pipeline.py", "--dataset", "synthetic", "--recipe", "demo", "--hw", "cpu", "jetson",
                "--generations", "6", "3", "1", "--out", str(tmp_path))  # fmt: skip
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == "--generations: 3 values for 2 devices; give 1 or 2"
    assert not any(tmp_path.iterdir())  # refused before any work
