import pytest

from autonad.errors import AutoNADError
from autonad.latency.table import DeviceTables, canonical_device, load_tables, table_path
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
