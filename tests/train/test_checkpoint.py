import random

import numpy as np
import pytest
import torch

from autonad.errors import AutoNADError
from autonad.train.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state


def draw() -> tuple:
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()


def test_rng_state_round_trips_through_a_safe_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    save_atomic({"format": "test/1", "rng": rng_state()}, tmp_path / "c.pt")
    expected = draw()
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "c.pt", "test/1")["rng"])
    assert draw() == expected


def test_bad_checkpoints_give_one_clear_line(tmp_path):
    with pytest.raises(AutoNADError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt", "test/1")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(AutoNADError, match="not a readable checkpoint"):
        load_checkpoint(junk, "test/1")
    good = tmp_path / "good.pt"
    save_atomic({"format": "other/1", "x": torch.ones(2)}, good)
    with pytest.raises(AutoNADError, match="is a 'other/1' checkpoint, expected 'test/1'"):
        load_checkpoint(good, "test/1")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(AutoNADError, match="not a readable checkpoint"):
        load_checkpoint(truncated, "test/1")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "test/1", "obj": Evil()}, path)
    with pytest.raises(AutoNADError, match="not a readable checkpoint"):
        load_checkpoint(path, "test/1")


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "c.pt"
    save_atomic({"format": "test/1", "v": 1}, path)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_atomic({"format": "test/1", "v": Unsaveable()}, path)
    assert load_checkpoint(path, "test/1")["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
