import pytest

from autonad.errors import AutoNADError
from autonad.space import BlockArch, SearchSpace, block_operator, block_operators, parse_choice
from autonad.space.operators import BlockOperator, cost_order, register_block_operator


@pytest.mark.parametrize("op", block_operators(), ids=lambda op: op.name)
def test_every_choice_token_parses_back_to_its_family(op):
    for token in op.choices([3, 5, 7]):
        family, kernel = parse_choice(token)
        assert family is op and BlockArch.from_choice(token, 2.0).choice == token
        assert (kernel is not None) == op.kernels
    assert block_operator(op.name) is op and op.calibration_kind == f"block.{op.name}"


@pytest.mark.parametrize("token", ["lstm", "conv", "mlp3", "transformer5", "Conv3", ""])
def test_a_token_outside_the_registry_is_one_line(token):
    with pytest.raises(AutoNADError, match="unknown block op choice"):
        parse_choice(token)


def test_the_cost_order_is_the_papers_light_to_heavy():
    assert sorted(["transformer", "conv5", "mlp", "conv3", "conv7"], key=cost_order) == [
        "mlp", "conv3", "conv5", "conv7", "transformer",
    ]  # fmt: skip
    space = SearchSpace.load("tiny")
    assert {b.choice for st in space.largest().stages for b in st.blocks} == {"transformer"}
    assert {b.choice for st in space.smallest().stages for b in st.blocks} == {"mlp"}


def test_registering_refuses_a_repeat_and_a_bad_name():
    with pytest.raises(ValueError, match="registered twice"):
        register_block_operator(BlockOperator("conv", "C", "again"))
    with pytest.raises(ValueError, match="lower-case letters"):
        BlockOperator("conv2d", "C", "digits would read as a kernel size")


def test_an_arch_with_an_unregistered_op_is_one_line():
    with pytest.raises(AutoNADError, match="unknown block op 'lstm' \\(choose from transformer, conv, mlp"):
        BlockArch("lstm", 2.0)


def test_a_width_the_operator_cannot_serve_is_refused_by_the_space():
    from autonad import resources
    from autonad.config import load_yaml

    data = load_yaml(resources.resolve("search_spaces", "tiny"))
    data["stages"][0]["width"] = [16, 30]
    with pytest.raises(AutoNADError, match="30 is not a multiple of 4 \\(the 'mlp' op\\)"):
        SearchSpace.from_dict(data, "tiny")
