"""Joining a real Ray cluster started by `ray start` (token authentication on), and starting a local one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autonad.cluster import gpu_share
from autonad.errors import AutoNADError

from .conftest import CLUSTER_CPUS

LOCAL = ("from autonad.cluster import connect_ray; import ray; connect_ray(None, 1); "
         "print(int(ray.cluster_resources()['CPU']), ray.get_runtime_context().gcs_address)")  # fmt: skip


def join(cluster, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLUSTER_CPUS, cluster.address], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow
def test_a_client_with_the_token_joins_both_nodes(ray_cluster, tmp_path):
    out, err = join(ray_cluster, ray_cluster.env(HOME=str(tmp_path))).communicate(timeout=120)  # token by path only
    assert out.strip() == "2", err[-2000:]


@pytest.mark.slow
def test_a_client_without_the_token_or_with_another_is_told_in_one_line(ray_cluster, tmp_path):
    """Both at once (Ray retries a refused join for 20 s before it gives up)."""
    none = join(ray_cluster, ray_cluster.env(token=False, HOME=str(tmp_path)))
    wrong = join(ray_cluster, ray_cluster.env(token=False, HOME=str(tmp_path), RAY_AUTH_TOKEN="0" * 64))
    (_, none_err), (_, wrong_err) = none.communicate(timeout=120), wrong.communicate(timeout=120)
    assert none.returncode != 0 and wrong.returncode != 0
    last = none_err.strip().splitlines()[-1]
    assert f"cannot join the Ray cluster at {ray_cluster.address}: it requires an authentication token and none " \
           "was found here" in last and "~/.ray/auth_token" in last and "RAY_AUTH_TOKEN" in last  # fmt: skip
    assert "InvalidAuthToken" not in none_err  # Ray's retry lines are kept, not printed
    assert "it refused the authentication token found here" in wrong_err.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_local_run_starts_its_own_ray_beside_a_ray_start_cluster(ray_cluster, tmp_path):
    """`ray_current_cluster` in Ray's temp folder names the `ray start` cluster; a plain run (no address) must
    not try to join it (Ray would refuse num_cpus) but start its own."""
    assert (ray_cluster.temp_dir / "ray" / "ray_current_cluster").is_file()
    env = ray_cluster.env(RAY_TMPDIR=str(ray_cluster.temp_dir), HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", LOCAL], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    cpus, gcs = result.stdout.split()
    assert cpus == "1" and not gcs.endswith(ray_cluster.address.rpartition(":")[2])


@pytest.mark.parametrize(
    ("gpus", "device", "tasks", "share"),
    [
        (0, "auto", 4, 0.0),
        (1, "auto", 4, 0.25),
        (1, "cpu", 4, 0.0),
        (2, "cuda", 2, 1.0),
        (4, "auto", 2, 1.0),
        (2, "auto", 3, 0.5),
    ],  # not 2/3: Ray puts a share on one GPU, and only two of 2/3 would fit
)
def test_the_gpu_share_a_ray_task_asks_for(gpus, device, tasks, share):
    assert gpu_share({"CPU": 8, "GPU": gpus}, device, tasks) == share


def test_device_cuda_on_a_cluster_without_gpus_is_one_line():
    with pytest.raises(AutoNADError, match=r"--device cuda: the Ray cluster has no GPU \(use --device cpu or auto\)"):
        gpu_share({"CPU": 8}, "cuda", 1)
