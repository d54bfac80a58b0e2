"""TensorBoard scalars: written where TensorBoard reads them, nested records flattened, resumes purged."""

from __future__ import annotations

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autonad.cli import main
from autonad.tensorboard import LOG_DIR, ScalarLog, flat_scalars


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_flat_scalars_keep_numbers_only():
    record = {"loss": 0.5, "val": {"largest": {"miou": 0.25, "per_class_iou": {"bg": 0.9}}, "names": ["a"]},
              "ok": True, "none": None, "nan": float("nan"), "step": 3}  # fmt: skip
    assert dict(flat_scalars(record, "x")) == {"x/loss": 0.5, "x/val/largest/miou": 0.25,
                                               "x/val/largest/per_class_iou/bg": 0.9, "x/step": 3.0}  # fmt: skip


def test_a_resumed_log_purges_the_steps_it_redoes(tmp_path):
    first = ScalarLog(tmp_path)
    for step in range(1, 6):
        first.scalars("train", {"loss": float(step)}, step)
    first.close()  # stopped after step 5, checkpointed at step 3
    second = ScalarLog(tmp_path, logged_until=3)
    for step in range(4, 7):
        second.scalars("train", {"loss": 10.0 * step}, step)
    second.close()
    assert scalars(tmp_path / LOG_DIR)["train/loss"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0),
                                                         (6, 60.0)]  # fmt: skip


def test_search_logs_supernet_steps_validation_and_generations(search_run):
    run, _ = search_run
    search = scalars(run / LOG_DIR)
    assert [s for s, _ in search["search/best_fitness"]] == [1, 2, 3]  # 2 generations, then the refinement
    assert {"search/best_score", "search/fastest_ms", "search/best_fitness_so_far"} <= set(search)
    supernet = (run.parent / yaml.safe_load((run / "summary.yaml").read_text())["supernet"]).parent
    train = scalars(supernet / LOG_DIR)
    steps = [s for s, _ in train["train/loss"]]
    assert steps == list(range(1, len(steps) + 1)) and "train/lr" in train
    assert "val/largest/miou" in train and "epoch/images_per_s" in train


def test_no_tensorboard_writes_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "tb-off", "dataset": "synthetic", "supernet": "tiny",
                                      "transform": {"size": [32, 32]},
                                      "train": {"epochs": 1, "batch_size": 4, "val_every": 1, "latency_every": 0,
                                                "val_images": 4}}))  # fmt: skip
    argv = ["train-supernet", "--recipe", str(recipe), "--out", "sn", "--steps", "3", "--no-tensorboard"]
    assert main(argv) == 0
    assert (tmp_path / "sn" / "checkpoint.pt").is_file() and not (tmp_path / "sn" / LOG_DIR).exists()


def test_a_new_run_over_old_logs_replaces_them(tmp_path):
    old = ScalarLog(tmp_path)
    for step in range(1, 4):
        old.scalars("train", {"loss": 1.0}, step)
    old.close()  # killed before its first checkpoint; the run starts again from scratch
    new = ScalarLog(tmp_path)
    for step in range(1, 3):
        new.scalars("train", {"loss": 2.0}, step)
    new.close()
    assert scalars(tmp_path / LOG_DIR)["train/loss"] == [(1, 2.0), (2, 2.0)]
