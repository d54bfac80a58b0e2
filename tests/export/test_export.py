import pytest
import torch

from autonad.errors import AutoNADError
from autonad.export import export_subnet, load_exported
from autonad.space import HeadsArch
from autonad.supernet import Supernet, SupernetConfig


def test_exported_subnet_matches_the_supernet_and_keeps_metadata(tmp_path):
    net = Supernet(SupernetConfig.load("tiny"), num_classes=3).eval()
    arch = net.space.smallest(heads=HeadsArch(cap=True))
    paths = export_subnet(net, arch, tmp_path, (48, 64), {"dataset": "x", "latency_ms": 1.5})
    model, meta = load_exported(paths["torchscript"])
    assert meta["arch_hash"] == arch.hash and meta["dataset"] == "x" and meta["input_size"] == [48, 64]
    x = torch.randn(2, 3, 48, 64)
    net.set_arch(arch)
    with torch.inference_mode():
        want, got = net(x), model(x)
    assert set(got) == {"seg", "cap", "cls"}
    assert torch.allclose(want["seg"], got["seg"], atol=1e-5)


def test_unreadable_export_is_one_line(tmp_path):
    bad = tmp_path / "model.ts"
    bad.write_bytes(b"not a model")
    with pytest.raises(AutoNADError, match="not a readable exported model"):
        load_exported(bad)
