"""`autonad profile` and `autonad latency` end to end on the tiny space at a small input size."""

import json

import pytest
import yaml

from autonad import resources
from autonad.cli import main
from autonad.latency.components import ComponentFactory
from autonad.latency.table import DeviceTables
from autonad.space import SearchSpace

PROFILE = ["profile", "--hw", "test-cpu", "--search-space", "tiny", "--input-size", "32x32", "--classes", "2",
           "--repeats", "3", "--calibrate", "6"]  # fmt: skip


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "test-cpu.yaml"
    assert main([*PROFILE, "--out", str(path)]) == 0
    return path


def test_profile_writes_a_complete_measured_table(measured):
    tables = DeviceTables.read(measured)
    prof = tables.profile("tiny", (32, 32))
    assert tables.device == "test-cpu" and prof.provenance == "measured" and prof.complete
    assert prof.runtime["threads"] == 1 and prof.runtime["probe_ms"] > 0
    assert prof.calibration.fitted_on == 6 and prof.calibration.mape is not None
    assert all(ms > 0 for ms in prof.entries.values())
    assert {"device", "runtime", "dtype", "batch", "input_size", "date", "method", "provenance"} <= (
        set(yaml.safe_load(measured.read_text())["profiles"][0]) | {"device"}
    )


def test_profile_resume_keeps_what_was_measured(measured, tmp_path):
    data = yaml.safe_load(measured.read_text())
    entries = data["profiles"][0]["entries"]
    kept = dict(list(entries.items())[:100])
    kept[next(iter(kept))] = 123.0  # a value no re-measurement would give
    data["profiles"][0].update(entries=kept, complete=False)
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([*PROFILE, "--calibrate", "0", "--out", str(partial), "--resume"]) == 0
    prof = DeviceTables.read(partial).profile("tiny", (32, 32))
    assert prof.complete and prof.entries[next(iter(kept))] == 123.0
    assert set(prof.entries) == set(entries)


@pytest.fixture
def fine_tiny(tmp_path):
    """The tiny space with the conv stem and a full-resolution detail path, as a user's YAML."""
    data = yaml.safe_load(resources.resolve("search_spaces", "tiny").read_text())
    data.update(name="tiny-fine", stem="conv")
    data["decoder"].update(detail=[0, 16], detail_stride=1)
    path = tmp_path / "tiny-fine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_profile_reuse_times_only_what_another_space_lacks(measured, fine_tiny, tmp_path):
    table = tmp_path / "table.yaml"
    table.write_bytes(measured.read_bytes())
    fine = ["--search-space", str(fine_tiny), "--calibrate", "0", "--out", str(table), "--reuse", "tiny"]
    assert main([*PROFILE, *fine]) == 0
    tables = DeviceTables.read(table)
    base, prof = tables.profile("tiny", (32, 32)), tables.profile("tiny-fine", (32, 32))
    shared = set(base.entries) & set(prof.entries)
    assert prof.complete and {k for k in prof.entries if ".stem " in k} and {k for k in prof.entries if "d16s1" in k}
    assert not {k for k in shared if k.startswith(("s1.embed", "s1.stem"))} and {
        k for k in shared if k.startswith("s2.")
    }
    assert {k.split(" ")[0] for k in set(prof.entries) - shared} == {"s1.stem", "head"}  # only these were timed
    assert all(prof.entries[k] == base.entries[k] for k in shared)  # taken over, not re-timed
    assert prof.runtime["probe_ms"] == base.runtime["probe_ms"] and "taken from its profile" in prof.method
    keys = {c.key for c in ComponentFactory(SearchSpace.load(fine_tiny), (32, 32), 1, [2]).components()}
    assert set(prof.entries) == keys


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reuse", "autonad"], "--reuse autonad: the table has no measured profile of it at 32x32, batch 1"),
        (["--reuse", "tiny", "--threads", "2"], "1 torch threads) (cpu, 1 thread(s), torch "),
    ],
)  # fmt: skip
def test_profile_reuse_refuses_a_profile_it_cannot_set_beside(measured, fine_tiny, tmp_path, extra, message, capsys):
    table = tmp_path / "table.yaml"
    table.write_bytes(measured.read_bytes())
    assert main([*PROFILE, "--search-space", str(fine_tiny), "--out", str(table), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_latency_predicts_with_provenance(measured, tmp_path, capsys):
    arch = tmp_path / "arch.yaml"
    SearchSpace.load("tiny").largest().save(arch)
    assert main(["latency", "--hw", str(measured), "--arch", str(arch), "--search-space", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "predicted latency:" in out and "test-cpu, measured" in out and "constant" in out
    assert main(["latency", "--hw", "jetson", "--arch", str(arch), "--search-space", "tiny"]) == 0
    assert "jetson-xavier-nx, estimate (roofline calibrated" in capsys.readouterr().out


def test_latency_validate_reports_and_writes_json(measured, tmp_path, capsys):
    out = tmp_path / "v.json"
    args = ["latency", "validate", "--hw", str(measured), "--search-space", "tiny", "--n", "4", "--out", str(out)]
    assert main(args) == 0
    assert "within +-10% of measured, Kendall tau" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["summary"]["n"] == 4 and len(result["subnets"]) == 4


def test_an_onnxruntime_profile_sits_beside_the_eager_one_and_validates(measured, tmp_path, capsys):
    path = tmp_path / "test-cpu.yaml"
    path.write_text(measured.read_text())
    assert main([*PROFILE, "--runtime", "onnxruntime", "--calibrate", "3", "--out", str(path)]) == 0
    tables = DeviceTables.read(path)
    eager, ort = tables.profile("tiny", (32, 32)), tables.profile("tiny", (32, 32), runtime="onnxruntime")
    assert len(tables.profiles) == 2 and eager.runtime_name == "torch" and ort.runtime_name == "onnxruntime"
    assert ort.runtime["onnxruntime"] and ort.complete and ort.entries.keys() == eager.entries.keys()
    assert ort.signature == "tiny 32x32 batch 1 on onnxruntime" and "onnxruntime session" in ort.method
    capsys.readouterr()
    args = ["latency", "validate", "--hw", str(path), "--search-space", "tiny", "--n", "3", "--runtime", "onnxruntime"]
    assert main(args) == 0
    assert "(tiny 32x32 batch 1 on onnxruntime), 3 random subnets" in capsys.readouterr().out


def test_prior_heatmap(tmp_path):
    out = tmp_path / "prior.png"
    assert main(["latency", "prior", "--hw", "3090", "--search-space", "tiny", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["latency", "validate", "--hw", "tpu9"], "unknown device 'tpu9' (latency tables:"),
        (["latency", "validate", "--hw", "jetson", "--input-size", "320"], "is a calibrated roofline estimate"),
        (["latency", "prior", "--hw", "jetson", "--search-space", "conv", "--input-size", "320"],
         "no profile for search space 'conv' at 320x320"),
        (["profile", "--hw", "tpu9", "--roofline"], "latency table 'tpu9' has no published peak figures"),
        (["profile", "--hw", "tpu9", "--roofline", "--peak-gflops", "900"], "give both --peak-gflops and --bandwidth"),
        (["latency", "--hw", "jetson"], "give --hw and --arch"),
        (["latency", "validate", "--hw", "cpu", "--search-space", "tiny", "--input-size", "128x128", "--runtime",
          "onnxruntime"], "at 128x128, batch 1 on onnxruntime (it has:"),
        (["profile", "--hw", "jetson", "--roofline", "--runtime", "onnxruntime"], "drop --runtime onnxruntime"),
        (["profile", "--hw", "jetson", "--published"], "--published calibrates a roofline estimate: add --roofline"),
        (["profile", "--hw", "jetson", "--roofline", "--published", "--launch-us", "8"], "drop --launch-us"),
        (["profile", "--hw", "orin-nano", "--roofline", "--published"], "no published timings on 'jetson-orin-nano'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["latency", "--runtime", "onnxruntime", "validate", "--hw", "cpu"],
                                  ["latency", "validate", "--hw", "cpu", "--runtime", "onnxruntime"]])  # fmt: skip
def test_latency_options_before_the_action_are_kept(argv):
    from autonad.cli import build_parser

    args = build_parser().parse_args(argv)
    assert args.runtime == "onnxruntime" and args.search_space == "autonad" and args.batch == 1


def test_a_new_device_estimated_from_its_peaks_is_found_by_its_alias(tmp_path, monkeypatch):
    from autonad.latency.table import load_tables

    monkeypatch.chdir(tmp_path)
    argv = ["profile", "--hw", "line7-gpu", "--roofline", "--peak-gflops", "900", "--bandwidth-gbs", "60",
            "--alias", "line7", "--search-space", "tiny", "--input-size", "32x32", "--classes", "2"]  # fmt: skip
    assert main(argv) == 0
    tables = load_tables("line7")
    assert tables.device == "line7-gpu" and tables.roofline.peak_gflops == 900.0
    assert tables.profile("tiny", (32, 32)).hardware.endswith("peak 900 GFLOP/s fp32, 60 GB/s, 5 us per kernel launch")
    # a second estimate keeps the figures and takes one given anew
    assert main([*argv[:3], "--roofline", "--launch-us", "8", *argv[10:]]) == 0
    assert load_tables("line7").roofline == type(tables.roofline)(900.0, 60.0, 8.0)


def test_an_estimate_calibrated_on_published_timings(tmp_path):
    from autonad.latency.table import DeviceTables

    out = tmp_path / "jetson.yaml"
    argv = ["profile", "--hw", "jetson", "--roofline", "--published", "--search-space", "tiny", "--input-size",
            "32x32", "--classes", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    tables = DeviceTables.read(out)
    prof = tables.profile("tiny", (32, 32))
    assert tables.roofline.calibrated and "Table VIII: DeepLabv3+" in tables.roofline.calibrated_on[0]
    assert prof.provenance == "estimate" and "calibrated on paper 003 Table VIII" in prof.hardware
    # new peak figures drop the calibration fitted under the old ones
    assert main([*argv[:4], "--peak-gflops", "900", "--bandwidth-gbs", "60", *argv[5:]]) == 0
    tables = DeviceTables.read(out)
    assert not tables.roofline.calibrated and tables.profile("tiny", (32, 32)).provenance == "roofline"
