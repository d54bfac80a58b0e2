"""The contract every registered block operator keeps (timm's habit: tests iterate the registry).

Each family gets a small space of its own (the tiny space with only that operator; families with
kernel sizes get kernels 3, 5 and 7 from the YAML alone), and for each: the supernet's output
equals the extracted network's, the extracted network scripts and exports to ONNX, the latency
components cover it (their roofline costs sum to the whole network's), and the latency prior
has a cost for each of its choices."""

from __future__ import annotations

import io
import random
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from autonad import resources
from autonad.config import load_yaml
from autonad.latency.components import ComponentFactory, arch_keys, kind_of, profiling_supernet
from autonad.latency.predictor import LatencyPredictor
from autonad.latency.prior import LatencyPrior
from autonad.latency.roofline import kernel_counts, roofline_ms, roofline_profile, roofline_spec
from autonad.latency.table import load_tables
from autonad.space import Arch, HeadsArch, SearchSpace, block_operators, edge_operators
from autonad.supernet import build_subnet
from autonad.supernet.operators import unregistered_families

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit and the TorchScript ONNX exporter
OPERATORS = [op.name for op in block_operators()]
SIZE = (64, 96)


def _space(name: str) -> SearchSpace:
    """The tiny space with one operator family (kernels 3, 5, 7 where it has kernel sizes)."""
    data = load_yaml(resources.resolve("search_spaces", "tiny"))
    data["name"] = f"tiny-{name}"
    for stage in data["stages"]:
        stage["ops"], stage["kernels"] = [name], [3, 5, 7]
    return SearchSpace.from_dict(data, f"tiny-{name}")


def _archs(space: SearchSpace, n: int = 4) -> list[Arch]:
    rng = random.Random(0)
    extremes = [space.largest(heads=HeadsArch(cap=True)), space.smallest()]
    return extremes + [space.sample(rng, heads=HeadsArch(cap=i % 2 == 0)) for i in range(n)]


@pytest.fixture(scope="module", params=OPERATORS)
def family(request):
    torch.manual_seed(0)
    space = _space(request.param)
    return request.param, space, profiling_supernet(space, classes=3)


def test_every_operator_has_a_supernet_module():
    assert OPERATORS and unregistered_families() == []


def test_kernel_sizes_come_from_the_yaml(family):
    name, space, _ = family
    op = next(o for o in block_operators() if o.name == name)
    assert space.stages[0].op_choices == ((f"{name}3", f"{name}5", f"{name}7") if op.kernels else (name,))


def test_supernet_equals_the_extracted_network(family):
    _, space, net = family
    x = torch.randn(2, 3, *SIZE)
    for arch in _archs(space):
        net.set_arch(arch)
        with torch.no_grad():
            ref, out = net(x), net.extract(arch).eval()(x)
        assert ref.keys() == out.keys()
        assert max(float((ref[k] - out[k]).abs().max()) for k in ref) <= 1e-5, arch.short()


def test_a_subnet_built_alone_is_the_extracted_network(family):
    """`build_subnet` (how exported and retrained subnets load) builds exactly the extracted structure,
    and nothing the size of the supernet."""
    _, space, net = family
    x = torch.randn(1, 3, *SIZE)
    for arch in _archs(space, n=2):
        ref = net.extract(arch).eval()
        built = build_subnet(net.config, net.num_classes, arch, space)
        assert [(k, v.shape) for k, v in built.state_dict().items()] == [
            (k, v.shape) for k, v in ref.state_dict().items()
        ]
        built.load_state_dict(ref.state_dict())
        with torch.no_grad():
            want, got = ref(x), built.eval()(x)
        assert all(torch.equal(want[k], got[k]) for k in want) and built.metadata == ref.metadata


def test_extracted_network_scripts_and_exports_to_onnx(family):
    _, space, net = family
    x = torch.randn(1, 3, *SIZE)
    for arch in _archs(space, n=1):
        model = net.extract(arch).eval()
        with torch.no_grad():
            ref = model(x)
            scripted = torch.jit.script(model)(x)
        assert all(torch.allclose(scripted[k], ref[k], rtol=0, atol=1e-5) for k in ref)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, output_names=list(ref))
        session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        for key, value in zip(ref, session.run(None, {session.get_inputs()[0].name: x.numpy()})):
            assert np.abs(value - ref[key].numpy()).max() <= 1e-4, (arch.short(), key)


def test_latency_components_cover_the_extracted_network(family):
    name, space, net = family
    spec, classes = roofline_spec(load_tables("rtx3090")), 3
    components = {c.key: c for c in ComponentFactory(space, SIZE, 1, [classes]).components()}
    assert {kind_of(k) for k in components} >= {f"block.{name}"}
    # without the CaP head: the tables leave it (well under 0.1 ms) to the calibrated constant
    for arch in (space.largest(), space.smallest(), space.sample(random.Random(1))):
        keys = arch_keys(space, arch, classes)
        assert set(keys) <= set(components)
        parts = sum(roofline_ms(components[k], spec) for k in keys)
        whole = kernel_counts(net.extract(arch), [torch.zeros(1, 3, *SIZE)], spec).ms(spec)
        assert parts == pytest.approx(whole, rel=0.01), arch.short()


def test_the_prior_and_the_predictor_cover_every_choice(family):
    _, space, _ = family
    profile = roofline_profile(ComponentFactory(space, SIZE, 1, [3]), load_tables("rtx3090"))
    weights = LatencyPrior.from_profile(profile, space).gene_weights
    for gene in space.genes:
        if gene.name.endswith(".op"):
            assert len(weights[gene.name]) == len(gene.choices) and all(w > 0 for w in weights[gene.name])
    predictor = LatencyPredictor("rtx3090", profile, space, classes=3)
    assert all(predictor.predict(arch) > 0 for arch in _archs(space))


EDGE_OPERATORS = [op.name for op in edge_operators()]


@pytest.mark.parametrize("mode", ["classical", "cross"])
@pytest.mark.parametrize("edge", EDGE_OPERATORS)
def test_every_edge_operator_extracts_exactly_in_every_sharing_mode(edge, mode):
    """The registry's MFAM edge ops: each on all ten edges (its kernel, dilation and depthwise stage
    from its entry, its weights a slice of the bank it shares) gives the extracted network's output."""
    from dataclasses import replace

    from autonad.supernet import Supernet, SupernetConfig

    torch.manual_seed(0)
    config = SupernetConfig.load("tiny")
    net = Supernet(replace(config, weight_sharing=mode), num_classes=3).eval()
    arch = net.space.largest()
    arch = replace(arch, decoder=replace(arch.decoder, edges=(edge,) * len(arch.decoder.edges)))
    net.set_arch(arch)
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        ref, out = net(x)["seg"], net.extract(arch).eval()(x)["seg"]
    assert float((ref - out).abs().max()) <= 1e-5
    spec = next(op for op in edge_operators() if op.name == edge)
    decoder = net.extract(arch).decoder.modules()
    depthwise = [m for m in decoder if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert bool(depthwise) == bool(spec.depthwise)
    assert all(m.kernel_size == (spec.depthwise,) * 2 for m in depthwise)


def test_an_unregistered_edge_op_is_one_line():
    from autonad.errors import AutoNADError
    from autonad.space import DecoderArch, DecoderSpace

    with pytest.raises(AutoNADError, match=r"edge_ops: unknown op 'conv7x7' \(choose from conv1x1, "):
        DecoderSpace(width=[64], edge_ops=["conv3x3", "conv7x7"])
    with pytest.raises(AutoNADError, match="decoder edge fpn3: unknown op 'sep5x5'"):
        DecoderArch(64, (1, 2, 3, 6), ("conv1x1",) * 9 + ("sep5x5",))
