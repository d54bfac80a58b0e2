"""`autonad datasets` end to end, in-process through `autonad.cli.main` (and once as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from autonad.cli import main


def _fails(argv: list[str], capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _damage(case: str, root, layout) -> str:
    """Break a folder dataset in one way; returns the file the error must name."""
    if case == "image without mask":
        (root / "masks" / "part04.png").unlink()
        return "part04.jpg"
    if case == "corrupt image":
        (root / "images" / "part05.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
        return "part05.png"
    if case == "size mismatch":
        layout.save(np.zeros((14, 17), np.uint8), root / "masks" / "part07.png")
        return "part07.png"
    if case == "mask value outside the classes":
        (root / "classes.txt").write_text("background\ndent\nrust\n")
        layout.save(layout.box_mask(14, 18, 7), root / "masks" / "part08.png")
        return "part08.png"
    if case == "empty split":
        (root / "val.txt").write_text("\n")
        return "val.txt"
    raise AssertionError(case)


EXPECTED = {
    "image without mask": "image has no mask",
    "corrupt image": "unreadable or corrupt image",
    "size mismatch": "mask is 17x14 (WxH) but image part07.png is 18x14",
    "mask value outside the classes": "mask value 7 outside the class ids 0..2",
    "empty split": "split 'val' is empty",
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_bad_folder_input_is_one_line_naming_the_file(case, make_folder, layout, capsys):
    root = make_folder()
    filename = _damage(case, root, layout)
    line = _fails(["datasets", "inspect", f"folder:{root}"], capsys)
    assert filename in line and EXPECTED[case] in line, line
    assert line.startswith("error: ")


def test_missing_root(tmp_path, capsys):
    line = _fails(["datasets", "inspect", "mt", "--data-root", str(tmp_path / "nowhere")], capsys)
    assert f"{tmp_path / 'nowhere'}: dataset root not found for 'mt'" in line


def test_unknown_dataset_name(capsys):
    line = _fails(["datasets", "inspect", "kolektor"], capsys)
    assert "unknown dataset 'kolektor' (known: synthetic, ksdd2, mt, neu-seg, msd, voc:<root>, folder:<root>)" in line


def test_skip_bad_lists_what_it_skipped(make_folder, layout, capsys):
    root = make_folder()
    _damage("corrupt image", root, layout)
    _damage("size mismatch", root, layout)
    assert main(["datasets", "inspect", f"folder:{root}", "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 bad files" in out and "part05.png" in out and "part07.png" in out
    assert "10 images" in out


def test_subprocess_exit_code_and_single_line(make_folder, layout):
    root = make_folder()
    _damage("corrupt image", root, layout)
    run = subprocess.run(
        [sys.executable, "-m", "autonad", "datasets", "inspect", f"folder:{root}"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr + run.stdout
    assert run.stderr.strip().count("\n") == 0 and "part05.png: unreadable or corrupt image" in run.stderr


def test_list(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic", "ksdd2", "mt", "neu-seg", "msd", "voc:<root>", "folder:<root>"):
        assert name in out


def test_inspect_json_and_split(make_neu, tmp_path, capsys):
    root = make_neu()
    assert main(["datasets", "inspect", "neu-seg", "--data-root", str(root), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "12 images: 12 with defects, 0 defect-free; 4 classes" in out
    assert "official train/test; val (15%) carved from official train" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["split"]["official"] == {"train": 9, "test": 3}
    assert summary["split"]["used"]["test"] == 3 and sum(summary["split"]["used"].values()) == 12


def test_preview_writes_a_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["datasets", "preview", "synthetic", "--out", str(out), "--n", "6", "--split", "val"]) == 0
    assert "6 val samples written" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size[0] >= 3 * 160
