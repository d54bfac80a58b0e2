"""One way to write ONNX, shared by the export stage (`model.onnx`) and the latency tables timed
on ONNX Runtime (`autonad.latency.runtimes`), so a table times what users deploy."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

ONNX_OPSET = 17


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """torch 2.13 deprecates TorchScript and the TorchScript-based ONNX exporter in favour of
    torch.export; both still work, and a TorchScript file runs wherever libtorch does (C++, mobile)
    without Python, so we keep them, without the noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def onnx_bytes(
    model: nn.Module,
    inputs: Sequence[Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = False,
) -> bytes:
    """`model(*inputs)` as an ONNX graph (TorchScript exporter, opset 17); `dynamic_batch` makes the
    first axis of every named input and output symbolic."""
    names = [*input_names, *(output_names or [])]
    axes = {n: {0: "batch"} for n in names} if dynamic_batch else None
    buffer = io.BytesIO()
    with quiet_export(), torch.no_grad():
        torch.onnx.export(model, tuple(inputs), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=list(input_names), output_names=list(output_names) if output_names else None,
                          dynamic_axes=axes)  # fmt: skip
    return buffer.getvalue()
