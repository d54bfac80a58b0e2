"""Inference runtimes a latency table can be measured for: how one module call is run when timed.

Users deploy the exported ONNX model, not eager PyTorch, and the two differ per operator (ONNX
Runtime fuses conv + activation, runs its own GEMM and layer-norm kernels, and pays no Python
dispatch per op). A table records the runtime its profile was timed with (`runtime.runtime`), and
components and whole subnets are timed with the same one.

* ``torch``: eager PyTorch in inference mode (the default; what `autonad profile` always did).
* ``onnxruntime``: the module exported as `autonad export` exports it (`autonad.onnx_export`)
  and run by an ONNX Runtime session with the table's thread count, all graph
  optimisations on, on the CPU execution provider (GPU timing would need IOBinding, so that host
  copies are not timed with every call: not supported yet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from autonad.errors import AutoNADError
from autonad.onnx_export import onnx_bytes

RUNTIMES = ("torch", "onnxruntime")
DEFAULT_RUNTIME = "torch"


def runtime_suffix(name: str) -> str:
    """How a figure names its runtime: nothing for eager torch (the default), else " on <runtime>"."""
    return "" if name == "torch" else f" on {name}"


def check_runtime(name: str) -> str:
    if name not in RUNTIMES:
        raise AutoNADError(f"unknown runtime '{name}' (runtimes: {', '.join(RUNTIMES)})")
    if name == "onnxruntime":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise AutoNADError("runtime onnxruntime: the onnxruntime package is not installed") from None
    return name


def runtime_version(name: str) -> str:
    if name == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    return torch.__version__.split("+")[0]


def prepare(
    name: str, module: nn.Module, inputs: Sequence[Tensor], device: torch.device, threads: int, what: str = "module"
) -> Callable[[], object]:
    """A zero-argument function that runs `module(*inputs)` once on runtime `name` (eager calls are
    made in inference mode by the caller's context; ONNX Runtime needs none)."""
    if check_runtime(name) == "torch":
        module = module.to(device).eval()
        inputs = [x.to(device) for x in inputs]
        return lambda: module(*inputs)
    if device.type != "cpu":  # feeding host arrays would time PCIe copies with every call (IOBinding needed)
        raise AutoNADError(f"runtime onnxruntime: timing on {device.type} is not supported yet; time it on the CPU")
    return _ort_session(module, inputs, threads, what)


def _ort_session(module: nn.Module, inputs: Sequence[Tensor], threads: int, what: str) -> Callable[[], object]:
    import onnxruntime as ort

    names = [f"input{i}" for i in range(len(inputs))]
    try:
        graph = onnx_bytes(module.eval(), list(inputs), names)
    except Exception as e:  # the exporter raises many types; name the module, keep one line
        raise AutoNADError(f"runtime onnxruntime: cannot export {what} to ONNX ({_first_line(e)})") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        used = {i.name for i in session.get_inputs()}  # the exporter drops inputs the graph does not read
        feeds = {n: x.numpy() for n, x in zip(names, inputs) if n in used}
        session.run(None, feeds)  # fails here, not inside the timing loop
    except Exception as e:  # onnxruntime raises its own exception types
        raise AutoNADError(f"runtime onnxruntime: cannot run {what} ({_first_line(e)})") from None
    return lambda: session.run(None, feeds)


def _first_line(error: Exception) -> str:
    return f"{error.__class__.__name__}: {(str(error).strip().splitlines() or [''])[0]}"
