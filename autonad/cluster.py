"""Joining or starting a Ray cluster, shared by the parallel search and hyperparameter tuning."""

from __future__ import annotations

import logging
import os
import socket

from autonad.errors import AutoNADError, reason

CONNECT_TIMEOUT_S = 5.0


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def connect_ray(address: str | None, workers: int | None) -> bool:
    """Join the cluster at `address`, or start a local Ray with `workers` CPUs; True if this call started it.

    An already initialised Ray session (e.g. the caller's) is used as it is.
    """
    import ray

    if address:
        check_reachable(address)
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "ignore_reinit_error": True}
    if not address:
        ray.init(num_cpus=workers or available_cores(), include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        raise AutoNADError(f"cannot join the Ray cluster at {address} ({reason(e)})") from None
    return True


def check_reachable(address: str) -> None:
    """Fail fast with one line: `ray.init` waits minutes on an address where no cluster answers."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise AutoNADError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        why = e.strerror or e.__class__.__name__
        raise AutoNADError(f"cannot reach the Ray cluster at {address} ({why})") from None
