import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autonad import resources
from autonad.errors import AutoNADError

REPO = Path(__file__).resolve().parents[1]


def test_resolve_by_name_and_by_path(tmp_path):
    assert resources.resolve("search_spaces", "autonad").name == "autonad.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\n")
    assert resources.resolve("search_spaces", str(own)) == own
    with pytest.raises(AutoNADError, match=r"unknown search space 'nope' \(available: .*autonad.*tiny"):
        resources.resolve("search_spaces", "nope")
    with pytest.raises(AutoNADError, match="file not found"):
        resources.resolve("recipes", str(tmp_path / "missing.yaml"))


@pytest.mark.slow
def test_wheel_ships_the_data_folders(tmp_path):
    """An installed autonad must find its YAML files without the source tree (SPEC 1)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("autonad-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in resources.KINDS:
        shipped = {f"autonad/{kind}/{p.name}" for p in (REPO / kind).glob("*.yaml")}
        assert shipped <= names, kind
    assert "autonad/search_spaces/autonad.yaml" in names
    packages = {str(p.relative_to(REPO)) for p in (REPO / "autonad").rglob("__init__.py")}
    assert packages <= names, sorted(packages - names)  # every subpackage is listed in pyproject.toml
    assert "autonad/report/templates/report.html.j2" in names
