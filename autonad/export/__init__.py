"""The export stage: a searched subnet as a standalone model file (no AutoNAD needed to run it).

    paths = export_subnet(supernet, arch, out_dir, input_size=(320, 320), info={...})

writes `model.ts` (TorchScript of the extracted plain-layer network, with `autonad.json` inside:
arch, classes, normalisation, input size, provenance) and checks that the scripted model's
outputs equal the eager extracted model's on a random input.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from autonad.config import write_atomic
from autonad.errors import AutoNADError
from autonad.space import Arch
from autonad.supernet import Supernet

TOLERANCE = 1e-5


def export_subnet(
    supernet: Supernet, arch: Arch, out_dir: str | Path, input_size: tuple[int, int], info: Mapping[str, Any]
) -> dict[str, Path]:
    model = supernet.extract(arch).cpu().float().eval()
    meta = {**model.metadata, **{k: v for k, v in info.items()}, "input_size": list(input_size)}
    with quiet_jit():
        scripted = torch.jit.script(model)
    check_same_outputs(model, scripted, input_size, supernet.space.in_channels)
    buffer = io.BytesIO()
    with quiet_jit():
        torch.jit.save(scripted, buffer, _extra_files={"autonad.json": json.dumps(meta)})
    path = Path(out_dir) / "model.ts"
    write_atomic(path, lambda f: f.write(buffer.getvalue()))
    return {"torchscript": path}


@contextlib.contextmanager
def quiet_jit():
    """torch 2.13 deprecates TorchScript in favour of torch.export; it still works, and a TorchScript
    file runs anywhere libtorch does (C++, mobile) without Python, so we keep it, without the noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        yield


def check_same_outputs(model: torch.nn.Module, exported: torch.nn.Module, size: tuple[int, int], channels: int) -> None:
    x = torch.randn(1, channels, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want, got = model(x), exported(x)
    for key, value in want.items():
        diff = (value - got[key]).abs().max().item()
        if diff > TOLERANCE:
            raise AutoNADError(f"export check failed: output '{key}' differs from the extracted model by {diff:.2e}")


def load_exported(path: str | Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """The TorchScript model and its `autonad.json` metadata."""
    files = {"autonad.json": ""}
    try:
        with quiet_jit():
            model = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except (RuntimeError, ValueError, OSError) as e:
        raise AutoNADError(f"{path}: not a readable exported model ({str(e).splitlines()[0][:120]})") from None
    return model, json.loads(files["autonad.json"] or "{}")
