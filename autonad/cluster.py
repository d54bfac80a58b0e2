"""Joining or starting a Ray cluster, shared by the parallel search, supernet training and tuning.

Ray (2.5x and later) starts clusters with token authentication when a token exists on the head
(`ray start` picks up ~/.ray/auth_token, which any local `ray.init` creates). A client joining with an
explicit HOST:PORT must then send the same token, and Ray only does so when RAY_AUTH_MODE=token is
set; we set it whenever a token is found here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token),
and name the missing or refused token in one line otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import tempfile
from collections.abc import Iterator

from autonad.errors import AutoNADError, reason

CONNECT_TIMEOUT_S = 5.0
TOKEN_HINT = ("copy the head's ~/.ray/auth_token to this machine, or set RAY_AUTH_TOKEN (the token) or "
              "RAY_AUTH_TOKEN_PATH (its file)")  # fmt: skip


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def connect_ray(address: str | None, workers: int | None) -> bool:
    """Join the cluster at `address`, or start a local Ray with `workers` CPUs; True if this call started it.

    An already initialised Ray session (e.g. the caller's) is used as it is. Without an address Ray is
    started here (address="local"): a cluster that `ray start` left behind must not be joined by accident.
    """
    import ray
    from ray.exceptions import RayError

    if address:
        check_reachable(address)
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "ignore_reinit_error": True}
    if not address:
        ray.init(address="local", num_cpus=workers or available_cores(), include_dashboard=False, **quiet)
        return True
    token = explicit_address(address) and use_token_if_found()
    with captured_stderr() as stderr:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError, RayError) as e:  # RayError: a token
            raise AutoNADError(join_failure(address, e, stderr(), token)) from None
    return True


def explicit_address(address: str) -> bool:
    """A HOST:PORT address (Ray sends a token to those only in token mode; "auto" finds it alone)."""
    return address not in ("auto", "local") and not address.startswith("ray://")


def use_token_if_found() -> bool:
    """Turn on Ray's token authentication for this process (and its children) when a token is found;
    whether one was. An explicit RAY_AUTH_MODE is respected."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication
        return False
    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        return False
    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")  # Ray caches its config at import: reload it in token mode
    AuthenticationTokenLoader.instance().reset_cache()
    return True


def join_failure(address: str, error: Exception, stderr: str, token: bool) -> str:
    """One line for a failed join; an authentication refusal names the token."""
    if "InvalidAuthToken" in stderr or "Unauthenticated" in stderr:
        if not token:
            return (f"cannot join the Ray cluster at {address}: it requires an authentication token and none was "
                    f"found here ({TOKEN_HINT})")  # fmt: skip
        return (
            f"cannot join the Ray cluster at {address}: it refused the authentication token found here ({TOKEN_HINT})"
        )
    return f"cannot join the Ray cluster at {address} ({reason(error)})"


@contextlib.contextmanager
def captured_stderr() -> Iterator:
    """Ray's C++ client logs a join's failed attempts to file descriptor 2, one line a second: keep them
    (the caller reads them to explain the failure in one line) instead of printing them."""
    try:
        sink = tempfile.TemporaryFile(mode="w+b")
        fd = os.dup(2)
    except OSError:  # no stderr to capture
        yield lambda: ""
        return
    try:
        os.dup2(sink.fileno(), 2)
        yield lambda: (sink.seek(0), sink.read().decode(errors="replace"))[1]
    finally:
        os.dup2(fd, 2)
        os.close(fd)
        sink.close()


def gpu_share(resources: dict[str, float], device: str, tasks: int) -> float:
    """The share of a GPU each of `tasks` concurrent Ray tasks asks for under the --device rule: cpu never,
    cuda always (one line where the cluster has no GPU), auto where the cluster has any."""
    gpus = float(resources.get("GPU", 0))
    if device == "cuda" and gpus <= 0:
        raise AutoNADError("--device cuda: the Ray cluster has no GPU (use --device cpu or auto)")
    if device == "cpu" or gpus <= 0:
        return 0.0
    if tasks <= gpus:
        return 1.0
    return 1.0 / math.ceil(tasks / gpus)  # Ray puts a share on one GPU: 1/k of each, so all tasks fit


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
