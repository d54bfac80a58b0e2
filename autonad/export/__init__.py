"""The export stage: a searched subnet as a standalone model file (no AutoNAD needed to run it).

    paths = export_subnet(supernet, arch, out_dir, input_size=(320, 320), info={...},
                          formats=("torchscript", "onnx", "state-dict"))
    model, meta = load_exported("runs/search/x/model.ts")      # TorchScript (or .onnx / .pt)

Formats:
- `torchscript` -> `model.ts`: the extracted plain-layer network, metadata inside (`autonad.json`);
  runs wherever libtorch does, without Python.
- `onnx` -> `model.onnx`: checked against onnxruntime on export (max abs difference <= 1e-4).
- `state-dict` -> `model.pt`: tensors + arch + supernet definition, loaded with weights_only.
Every export also writes `model.json`: arch, classes, input size, normalisation, metrics, latency
and its provenance. Each file is checked against the eager extracted model on export.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autonad.config import to_mapping, write_atomic, write_text_atomic
from autonad.errors import AutoNADError, reason
from autonad.onnx_export import onnx_bytes, quiet_export
from autonad.space import Arch, SearchSpace
from autonad.supernet import SegmentationNet, Supernet, build_subnet
from autonad.supernet.config import saved_config

FORMATS = ("torchscript", "onnx", "state-dict")
FILE_NAMES = {"torchscript": "model.ts", "onnx": "model.onnx", "state-dict": "model.pt"}
STATE_FORMAT = "autonad-model/1"
TOLERANCE = {"torchscript": 1e-5, "onnx": 1e-4, "state-dict": 1e-6}

Outputs = dict[str, torch.Tensor]


def export_subnet(
    supernet: Supernet,
    arch: Arch,
    out_dir: str | Path,
    input_size: tuple[int, int],
    info: Mapping[str, Any],
    formats: Iterable[str] = ("torchscript",),
) -> dict[str, Path]:
    """Extract `arch` from the (trained) supernet and write it in each format, checked on export."""
    model = supernet.extract(arch)
    return export_model(model, out_dir, input_size, {**info, "supernet_config": to_mapping(supernet.config)}, formats)


def export_model(
    model: SegmentationNet,
    out_dir: str | Path,
    input_size: tuple[int, int],
    info: Mapping[str, Any],
    formats: Iterable[str] = ("torchscript",),
) -> dict[str, Path]:
    """Write an extracted (possibly retrained) subnet in each format, each checked against it.

    `info` must hold `supernet_config` (the state-dict format rebuilds the network from it)."""
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise AutoNADError(f"unknown export format '{unknown[0]}' (choose from {', '.join(FORMATS)})")
    model = copy.deepcopy(model).cpu().float().eval()
    meta = {**model.metadata, **info, "input_size": list(input_size)}
    out_dir = Path(out_dir)
    channels = int(model.metadata["in_channels"])
    x = torch.randn(1, channels, *input_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = model(x)
    paths = {}
    for fmt in formats:
        path = out_dir / FILE_NAMES[fmt]
        WRITERS[fmt](model, x, meta, path)
        loaded, _ = load_exported(path)
        check_same_outputs(want, loaded(x), fmt)
        paths[fmt] = path
    write_text_atomic(out_dir / "model.json", json.dumps(meta, indent=1) + "\n")
    paths["metadata"] = out_dir / "model.json"
    return paths


# -- writers --------------------------------------------------------------------------------------
def _write_torchscript(model: torch.nn.Module, x: torch.Tensor, meta: dict, path: Path) -> None:
    with quiet_export():
        scripted = torch.jit.script(model)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer, _extra_files={"autonad.json": json.dumps(meta)})
    write_atomic(path, lambda f: f.write(buffer.getvalue()))


def _write_onnx(model: torch.nn.Module, x: torch.Tensor, meta: dict, path: Path) -> None:
    import onnx

    names = meta["outputs"].split(",")
    proto = onnx.load_from_string(onnx_bytes(model, [x], ["image"], names, dynamic_batch=True))
    onnx.helper.set_model_props(proto, {"autonad.json": json.dumps(meta)})
    write_atomic(path, lambda f: f.write(proto.SerializeToString()))


def _write_state_dict(model: torch.nn.Module, x: torch.Tensor, meta: dict, path: Path) -> None:
    payload = {"format": STATE_FORMAT, "metadata": json.dumps(meta), "state_dict": model.state_dict()}
    write_atomic(path, lambda f: torch.save(payload, f))


WRITERS: dict[str, Callable[[torch.nn.Module, torch.Tensor, dict, Path], None]] = {
    "torchscript": _write_torchscript,
    "onnx": _write_onnx,
    "state-dict": _write_state_dict,
}


def output_names(meta: Mapping[str, Any]) -> list[str]:
    """The outputs a model's metadata says it gives ("seg", "cap", "cls")."""
    return [n for n in str(meta.get("outputs", "")).split(",") if n]


# -- loading --------------------------------------------------------------------------------------
def load_exported(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[Callable[[torch.Tensor], Outputs], dict[str, Any]]:
    """A callable `images (B, C, H, W) -> {"seg": logits, ...}` and the model's metadata, for any
    exported format (by file suffix), computing on `device` (ONNX: onnxruntime's CUDA provider where it
    is installed); anything else is one clear line. Images and outputs stay where the caller has them."""
    device = torch.device(device)
    path = Path(path)
    if not path.is_file():
        raise AutoNADError(f"{path}: model file not found")
    loader = {".ts": _load_torchscript, ".onnx": _load_onnx, ".pt": _load_state_dict}.get(path.suffix)
    if loader is None:
        raise AutoNADError(f"{path}: not an exported model (expected model.ts, model.onnx or model.pt)")
    run, meta = loader(path, device)
    return run, meta


def on_device(model: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor], Outputs]:
    """The model on `device`, taking and giving tensors on the caller's (CPU) side."""
    if device.type == "cpu":
        return model
    model = model.to(device)

    def run(images: torch.Tensor) -> Outputs:
        return {k: v.cpu() for k, v in model(images.to(device)).items()}

    return run


def onnx_providers(device: torch.device) -> list[str]:
    """onnxruntime providers for `device`: CUDA first where this onnxruntime build has it."""
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _load_torchscript(path: Path, device: torch.device):
    files = {"autonad.json": ""}
    try:
        with quiet_export():
            model = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except (RuntimeError, ValueError, OSError) as e:
        raise AutoNADError(f"{path}: not a readable TorchScript model ({reason(e, 120)})") from None
    model.eval()
    return on_device(model, device), json.loads(files["autonad.json"] or "{}")


def _load_onnx(path: Path, device: torch.device):
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=onnx_providers(device))
    except Exception as e:  # onnxruntime raises its own exception types for unreadable files
        raise AutoNADError(f"{path}: not a readable ONNX model ({reason(e, 120)})") from None
    meta = json.loads(session.get_modelmeta().custom_metadata_map.get("autonad.json", "{}"))
    names = [o.name for o in session.get_outputs()]

    fixed = tuple(session.get_inputs()[0].shape[2:])  # the traced H, W (the PPM pooling is built for it)

    def run(images: torch.Tensor) -> Outputs:
        if tuple(images.shape[2:]) != fixed:
            raise AutoNADError(
                f"{path}: the ONNX model takes {fixed[0]}x{fixed[1]} images, got {images.shape[2]}x{images.shape[3]}; "
                "a model trained on crops runs whole images of any size: use model.ts (TorchScript) or model.pt"
            )
        values = session.run(None, {session.get_inputs()[0].name: images.detach().cpu().numpy()})
        return {name: torch.from_numpy(np.asarray(v)) for name, v in zip(names, values)}

    return run, meta


def _load_state_dict(path: Path, device: torch.device):
    from autonad.train.checkpoint import load_checkpoint

    payload = load_checkpoint(path, STATE_FORMAT)
    try:
        meta = json.loads(payload["metadata"])
        config = saved_config(meta["supernet_config"], f"{path}: supernet_config")
        arch = Arch.from_dict(json.loads(meta["arch"]), f"{path}: arch")
        space = None  # exports written before the definition was recorded: the space by name
        if "search_space_def" in meta:
            space = SearchSpace.from_dict(json.loads(meta["search_space_def"]), f"{path}: search_space_def")
        model = build_subnet(config, int(meta["num_classes"]), arch, space).eval()  # only the subnet is built
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise AutoNADError(f"{path}: damaged or incompatible exported state dict ({reason(e, 120)})") from None
    return on_device(model, device), meta


# -- checks ---------------------------------------------------------------------------------------
def check_same_outputs(want: Outputs, got: Outputs, fmt: str) -> None:
    for key, value in want.items():
        diff = (value - got[key]).abs().max().item()
        if diff > TOLERANCE[fmt]:
            raise AutoNADError(f"{fmt} export check failed: output '{key}' differs from the model by {diff:.2e}")
