"""Slicing is a view: activating an arch touches no tensor; forward computes on views of
exactly the active slices, and copies no weight (except one documented small reshape)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from autonad.supernet.elastic import Elastic, ElasticShiftConv


class _RecordOps(TorchDispatchMode):
    """Every aten op run inside the context, with its tensor arguments."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[torch._ops.OpOverload, list[torch.Tensor]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = []
        for a in [*args, *kwargs.values()]:
            if isinstance(a, torch.Tensor):
                tensors.append(a)
            elif isinstance(a, (list, tuple)):
                tensors += [t for t in a if isinstance(t, torch.Tensor)]
        self.calls.append((func, tensors))
        return func(*args, **kwargs)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _active_elastic_layers(module):
    if isinstance(module, Elastic):
        if module.active_slices():
            yield module
        children = module.active_children()
    else:
        children = module.children()
    for child in children:
        yield from _active_elastic_layers(child)


def _forward_recorded(net, x):
    with torch.no_grad(), _RecordOps() as record:
        net(x)
    return record.calls


def test_set_arch_runs_no_tensor_op(autonad_net, some_archs):
    params = {n: (_storage(p), p.shape) for n, p in autonad_net.named_parameters()}
    for arch in some_archs(autonad_net.space, 10, seed=31):
        with _RecordOps() as record:
            autonad_net.set_arch(arch)
        assert record.calls == [], [str(f) for f, _ in record.calls[:5]]
    assert params == {n: (_storage(p), p.shape) for n, p in autonad_net.named_parameters()}
    assert not list(autonad_net.buffers())


def test_sliced_weights_are_views_of_the_parameters(autonad_net, some_archs):
    for arch in some_archs(autonad_net.space, 5, seed=32):
        autonad_net.set_arch(arch)
        layers = list(_active_elastic_layers(autonad_net))
        assert layers
        for layer in layers:
            for name, view in layer.sliced_weights().items():
                param = getattr(layer, name)
                assert view._base is param and _storage(view) == _storage(param), (type(layer), name)


def test_forward_reads_exactly_the_active_slices(tiny_net, autonad_net, some_archs):
    """The weight elements each compute op reads are the active slice, no more and no less,
    for every used parameter; no other parameter is read."""
    for net, x in ((tiny_net, torch.randn(1, 3, 64, 64)), (autonad_net, torch.randn(1, 3, 64, 64))):
        named = dict(net.named_parameters())
        by_storage = {_storage(p): name for name, p in named.items()}
        for arch in some_archs(net.space, 3, seed=34):
            net.set_arch(arch)
            read: dict[str, set[int]] = {}
            for func, tensors in _forward_recorded(net, x):
                if func.is_view:
                    continue  # views read nothing; the op consuming them does
                for t in tensors:
                    name = by_storage.get(_storage(t))
                    if name is not None:
                        ids = torch.arange(named[name].numel()).view(named[name].shape)
                        footprint = ids.as_strided(t.shape, t.stride(), t.storage_offset())
                        read.setdefault(name, set()).update(footprint.flatten().tolist())
            used = net.active_parameters()
            assert read.keys() == used.keys(), arch.short()
            for name, index in used.items():
                ids = torch.arange(named[name].numel()).view(named[name].shape)
                assert read[name] == set(ids[index].flatten().tolist()), (arch.short(), name)


# Non-view ops that may read a weight in forward: the compute kernels.
_COMPUTE = {"addmm", "mm", "bmm", "matmul", "convolution", "native_layer_norm", "native_group_norm", "add", "mul"}


def test_forward_copies_no_weights(autonad_net, some_archs):
    """Only the documented forward-time reshape of the small ACmix shift kernel copies a weight."""
    x = torch.randn(1, 3, 64, 64)
    allowed = {_storage(p) for m in autonad_net.modules() if isinstance(m, ElasticShiftConv) for p in m.parameters()}
    param_storage = {_storage(p) for p in autonad_net.parameters()}
    for arch in some_archs(autonad_net.space, 3, seed=33):
        autonad_net.set_arch(arch)
        copies = set()
        for func, tensors in _forward_recorded(autonad_net, x):
            touched = {_storage(t) for t in tensors} & param_storage
            name = func.__name__.split(".")[0]
            if touched and not func.is_view and name not in _COMPUTE and not touched <= allowed:
                copies.add(str(func))
        assert not copies, f"{arch.short()}: weight copies via {sorted(copies)}"
