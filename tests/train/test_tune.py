"""What a Ray Tune trial asks Ray for (the tuning run itself: tests/cli/test_retrain_cli.py)."""

import dataclasses
from pathlib import Path

from autonad.train.tune import TuneJob


def test_a_tune_trial_asks_ray_for_its_threads_and_its_share_of_a_gpu():
    job = TuneJob(retrain=None, dataset="synthetic", data_root=None, skip_bad=False, trials_dir=Path("t"), threads=2)
    assert job.resources == {"cpu": 2}  # CPU trials (no GPU, or --device cpu)
    assert dataclasses.replace(job, gpus=0.25).resources == {"cpu": 2, "gpu": 0.25}
