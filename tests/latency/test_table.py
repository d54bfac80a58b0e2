import pytest

from autonad.errors import AutoNADError
from autonad.latency.table import DeviceTables, RooflineSpec, canonical_device, load_tables, table_path
from autonad.space import SearchSpace

from .conftest import synthetic_profile


def test_table_round_trips(tmp_path):
    space = SearchSpace.load("tiny")
    tables = DeviceTables(device="my-device", aliases=["mine"], description="test")
    tables.put(synthetic_profile(space))
    tables.write(tmp_path / "t.yaml")
    again = DeviceTables.read(tmp_path / "t.yaml")
    assert again == tables
    assert (tmp_path / "t.yaml").read_text().startswith("format: autonad-latency/1\ndevice: my-device\n")


def test_put_replaces_the_same_signature():
    space = SearchSpace.load("tiny")
    tables = DeviceTables(device="d")
    tables.put(synthetic_profile(space))
    tables.put(synthetic_profile(space, {"conv3": 5.0}))
    tables.put(synthetic_profile(space, size=(32, 32)))
    assert len(tables.profiles) == 2
    assert tables.profile("tiny", (64, 64)).entries["s1.conv3 w16 r2.00"] == 5.0


def test_other_space_or_size_is_refused_with_what_exists():
    tables = DeviceTables(device="d", profiles=[synthetic_profile(SearchSpace.load("tiny"))])
    with pytest.raises(AutoNADError, match=r"no profile for search space 'autonad' at 64x64.*it has: tiny 64x64"):
        tables.profile("autonad", (64, 64))
    with pytest.raises(AutoNADError, match="at 320x320"):
        tables.profile("tiny", (320, 320))
    assert tables.select("tiny", None).input_size == [64, 64]


def test_incomplete_profile_is_not_used():
    prof = synthetic_profile(SearchSpace.load("tiny"))
    prof.complete = False
    with pytest.raises(AutoNADError, match="incomplete"):
        DeviceTables(device="d", profiles=[prof]).profile("tiny", (64, 64))


def test_aliases_and_unknown_devices():
    assert canonical_device("jetson") == "jetson-xavier-nx"
    assert canonical_device("3090") == "rtx3090"
    assert canonical_device("cpu") == "cpu-x86-2core"
    assert load_tables("jetson").device == "jetson-xavier-nx"
    assert table_path("cpu").name == "cpu-x86-2core.yaml"
    with pytest.raises(AutoNADError, match=r"unknown device 'tpu9'.*jetson-xavier-nx.*jetson \(= jetson-xavier-nx\)"):
        table_path("tpu9")


def test_wrong_format_is_refused(tmp_path):
    (tmp_path / "x.yaml").write_text("format: other/1\ndevice: x\n")
    with pytest.raises(AutoNADError, match="not an AutoNAD latency table"):
        DeviceTables.read(tmp_path / "x.yaml")


def test_a_local_table_is_found_by_its_name_and_its_aliases(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `autonad profile` writes ./latency_tables/<device>.yaml
    space = SearchSpace.load("tiny")
    (tmp_path / "latency_tables").mkdir()
    DeviceTables(device="line7-box", aliases=["line7"], profiles=[synthetic_profile(space)]).write(
        tmp_path / "latency_tables" / "line7-box.yaml"
    )
    assert table_path("line7") == table_path("line7-box") == tmp_path / "latency_tables" / "line7-box.yaml"
    assert canonical_device("line7") == "line7-box" and load_tables("line7").device == "line7-box"
    assert table_path("jetson").parent != tmp_path / "latency_tables"  # shipped tables are still found
    with pytest.raises(AutoNADError, match=r"unknown device 'tpu9'.*line7 \(= line7-box\)"):
        table_path("tpu9")


def test_a_local_replacement_of_a_shipped_table_keeps_its_aliases(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latency_tables").mkdir()
    local = tmp_path / "latency_tables" / "jetson-xavier-nx.yaml"
    DeviceTables(device="jetson-xavier-nx", profiles=[synthetic_profile(SearchSpace.load("tiny"))]).write(local)
    assert table_path("jetson") == table_path("jetson-xavier-nx") == local


def test_a_local_alias_does_not_take_a_shipped_devices_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latency_tables").mkdir()
    mine = tmp_path / "latency_tables" / "my-gpu.yaml"
    DeviceTables(
        device="my-gpu", aliases=["rtx3090", "mine"], profiles=[synthetic_profile(SearchSpace.load("tiny"))]
    ).write(mine)
    assert table_path("mine") == mine and table_path("rtx3090").parent != mine.parent


def test_a_cpu_table_measured_on_another_processor_says_so(monkeypatch):
    import autonad.timing

    prof = synthetic_profile(SearchSpace.load("tiny"))
    prof.provenance, prof.runtime = "measured", {"device": "cpu", "threads": 1}
    prof.hardware = "Intel(R) Xeon(R) Processor (2 cores, 1 torch threads)"
    assert prof.processor == "Intel(R) Xeon(R) Processor"
    monkeypatch.setattr(autonad.timing, "cpu_model", lambda: "Intel(R) Xeon(R) Processor")
    assert prof.host_mismatch("cpu-x86-2core") is None
    monkeypatch.setattr(autonad.timing, "cpu_model", lambda: "AMD EPYC")
    note = prof.host_mismatch("cpu-x86-2core")
    assert "measured on Intel(R) Xeon(R) Processor, this machine is AMD EPYC" in note and "\n" not in note
    assert "autonad profile --hw cpu-x86-2core-here --search-space tiny --input-size 64x64" in note
    prof.provenance = "roofline"
    assert prof.processor is None and prof.host_mismatch("x") is None


def test_profiles_of_two_runtimes_are_kept_apart():
    space = SearchSpace.load("tiny")
    tables = DeviceTables(device="d")
    tables.put(synthetic_profile(space))
    ort = synthetic_profile(space, {"conv3": 0.4})
    ort.runtime = {**ort.runtime, "runtime": "onnxruntime"}
    tables.put(ort)
    assert len(tables.profiles) == 2
    assert tables.profile("tiny", (64, 64)).runtime_name == "torch"
    assert tables.select("tiny", None, runtime="onnxruntime") is ort
    assert tables.find("tiny", (64, 64), 1, "onnxruntime") is ort
    with pytest.raises(AutoNADError, match=r"batch 2 on onnxruntime .*--runtime onnxruntime"):
        tables.profile("tiny", (64, 64), 2, "onnxruntime")


def test_tables_in_the_environment_folders_are_found_from_anywhere(tmp_path, monkeypatch):
    mine = tmp_path / "tables"
    mine.mkdir()
    DeviceTables(device="line9-box", aliases=["line9"], profiles=[synthetic_profile(SearchSpace.load("tiny"))]).write(
        mine / "line9-box.yaml"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(AutoNADError, match="unknown device 'line9'"):
        table_path("line9")
    monkeypatch.setenv("AUTONAD_LATENCY_TABLES", str(mine))
    assert table_path("line9") == mine / "line9-box.yaml" and canonical_device("line9") == "line9-box"


@pytest.mark.parametrize("device", ["rtx3090", "jetson-xavier-nx", "jetson-orin-nano"])
def test_roofline_figures_are_table_data(device):
    from autonad.latency.roofline import roofline_spec

    tables = load_tables(device)
    spec = roofline_spec(tables)
    assert spec.peak_gflops > 0 and spec.bandwidth_gbs > 0
    # every profile in the table was estimated from exactly these figures (and calibration, where it has one)
    assert {p.provenance for p in tables.profiles} == {"estimate" if spec.calibrated else "roofline"}
    assert {p.hardware for p in tables.profiles} == {spec.summary(tables.description)}


def test_a_table_without_peak_figures_is_refused_for_a_roofline_estimate():
    from autonad.latency.roofline import roofline_spec

    with pytest.raises(AutoNADError, match="no published peak figures.*--peak-gflops G --bandwidth-gbs B"):
        roofline_spec(DeviceTables(device="my-box"))
    with pytest.raises(ValueError, match="must be > 0"):
        RooflineSpec(peak_gflops=0.0, bandwidth_gbs=10.0)


def test_the_table_module_does_not_import_the_roofline_estimate():
    """Device names come from the tables alone: no table <-> roofline import cycle."""
    import ast
    import inspect

    import autonad.latency.table as table

    tree = ast.parse(inspect.getsource(table))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "autonad.latency.roofline" not in imported
