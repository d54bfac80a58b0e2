"""Shared fixtures. Real datasets live in ../shared/datasets and are never copied."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("AUTONAD_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (set AUTONAD_SHARED_DATASETS)")
    return SHARED_DATASETS


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Two cores shared with other work: more than one torch thread can be far slower, and
    timing-sensitive code (profiles, benchmarks) pins its own count anyway."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def wide_console():
    """Tests read tables from captured output: keep rich from wrapping them at 80 columns."""
    from autonad import ui

    old = ui.console.width, ui.err_console.width
    ui.console.width = ui.err_console.width = 200
    yield
    ui.console.width, ui.err_console.width = old


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray session (2 CPUs) for every Ray test (search workers, tuning trials); they join it."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             logging_level=logging.ERROR)  # fmt: skip
    yield ray
    ray.shutdown()


SEARCH_RECIPE = {"name": "report-test", "dataset": "folder", "supernet": "tiny", "normalise": "dataset",
          "transform": {"size": [32, 32], "hflip": True},
          "train": {"epochs": 2, "batch_size": 4, "val_every": 1, "latency_every": 0, "cap": False, "seed": 3},
          "search": {"population": 4, "generations": 2, "parents": 2, "val_images": 4}}  # fmt: skip


@pytest.fixture(scope="session")
def search_run(tmp_path_factory) -> tuple[Path, str]:
    """(run folder, dataset argument) of one tiny finished search (folder dataset, roofline table),
    run from its own working folder; shared by the report and TensorBoard tests."""
    from autonad.cli import main
    from autonad.data import SyntheticSource
    from autonad.data.folder import write_folder

    root = tmp_path_factory.mktemp("report")
    data = write_folder(SyntheticSource(n=24, size=40, seed=1), root / "data")
    (root / "recipe.yaml").write_text(yaml.safe_dump(SEARCH_RECIPE, sort_keys=False))
    table = root / "test-gpu.yaml"
    old = os.getcwd()
    os.chdir(root)
    try:
        assert main(["profile", "--hw", "rtx3090", "--roofline", "--search-space", "tiny", "--input-size", "32x32",
                     "--classes", "4", "--out", str(table)]) == 0  # fmt: skip
        assert main(["search", "--dataset", f"folder:{data}", "--recipe", "recipe.yaml", "--hw", str(table),
                     "--out", "run", "--workers", "0", "--seed", "1"]) == 0  # fmt: skip
    finally:
        os.chdir(old)
    return root / "run", f"folder:{data}"


@dataclass
class RayCluster:
    """A cluster as `ray start` makes one; `env(...)` is a client's environment (the token found by path)."""

    address: str  # 127.0.0.1:PORT
    token: Path
    temp_dir: Path  # the cluster's RAY_TMPDIR: its ray/ray_current_cluster names it

    def env(self, token: bool = True, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200", **extra)
        env.pop("WORLD_SIZE", None)
        if token:
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token)
        return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster: `ray start --head` plus one worker node (1 CPU each), token authentication
    on (its token in a file only the clients given `RayCluster.env()` know). Its temp folder is its own, so
    this session's in-process Ray never sees it."""
    pytest.importorskip("ray")
    root = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths have a length limit
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    port = _free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", token, root)
    env = dict(cluster.env(), RAY_AUTH_MODE="token", RAY_TMPDIR=str(root), HOME=str(root))
    ray = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    nodes = []
    with (root / "cluster.log").open("w") as log:
        nodes.append(subprocess.Popen([ray, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                                       *common], env=env, stdout=log, stderr=log, start_new_session=True))  # fmt: skip
        try:
            _wait_for_port(port, nodes[0], root / "cluster.log")
            nodes.append(subprocess.Popen([ray, "start", "--address", cluster.address, *common], env=env, stdout=log,
                                          stderr=log, start_new_session=True))  # fmt: skip
            _wait_for_cpus(cluster, 2)
            yield cluster
        finally:
            for node in reversed(nodes):  # --block: SIGTERM stops the node's processes
                os.killpg(node.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for node in nodes:
                try:
                    node.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                try:
                    os.killpg(node.pid, signal.SIGKILL)  # what is left of the node's process group
                except ProcessLookupError:
                    pass
            shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start --head ended: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the Ray head did not listen on {port} within {timeout} s")


CLUSTER_CPUS = "from autonad.cluster import connect_ray; import ray, sys; connect_ray(sys.argv[1], None); " \
               "print(int(ray.cluster_resources().get('CPU', 0)))"  # fmt: skip


def _wait_for_cpus(cluster: RayCluster, cpus: int, timeout: float = 60.0) -> None:
    """Until the worker node has joined (the cluster counts `cpus` CPUs)."""
    deadline, seen = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        result = subprocess.run([sys.executable, "-c", CLUSTER_CPUS, cluster.address], env=cluster.env(),
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        seen = result.stdout.strip() or result.stderr[-500:]
        if seen == str(cpus):
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {cluster.address} did not reach {cpus} CPUs: {seen}")
