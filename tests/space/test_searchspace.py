import collections
import dataclasses
import random

import pytest

from autonad import resources
from autonad.errors import AutoNADError
from autonad.space import EDGE_NAMES, Arch, DecoderSpace, SearchSpace


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.load("autonad")


def test_paper_table_one(space):
    # Paper Table I: depth (1,4,1); channels (32,64,32) (32,128,32) (128,224,32) (192,288,32);
    # FFN ratio (7.5,9.0,0.5) for stages 1-2 and (3.5,5.0,0.5) for stages 3-4.
    assert [s.stride for s in space.stages] == [4, 8, 16, 32]
    assert all(s.depth == [1, 2, 3, 4] for s in space.stages)
    assert [s.width for s in space.stages] == [
        [32, 64],
        [32, 64, 96, 128],
        [128, 160, 192, 224],
        [192, 224, 256, 288],
    ]
    assert space.stages[0].ffn_ratio == space.stages[1].ffn_ratio == [7.5, 8.0, 8.5, 9.0]
    assert space.stages[2].ffn_ratio == space.stages[3].ffn_ratio == [3.5, 4.0, 4.5, 5.0]
    assert all(s.op_choices == ("transformer", "conv3", "conv5", "mlp") for s in space.stages)
    assert [s.sr_ratio for s in space.stages] == [8, 4, 2, 1]
    assert space.decoder.edge_ops == ["conv1x1", "conv3x3", "conv5x5", "dil3x3", "dwsep3x3"]
    assert len(space.decoder.pool_combos) == 15  # 4 distinct sizes out of 1..6


def test_every_shipped_space_loads():
    names = resources.list_shipped("search_spaces")
    ablation = {"conv", "transformer", "mlp", "conv+transformer", "conv+mlp", "transformer+mlp"}
    assert {"autonad", "tiny"} | ablation <= set(names)
    for name in names:
        space = SearchSpace.load(name)
        assert space.contains(space.sample(random.Random(0)))
    assert SearchSpace.load("conv+mlp").stages[0].op_choices == ("conv3", "conv5", "mlp")


def test_genome_is_fixed_length_and_round_trips(space):
    rng = random.Random(3)
    for _ in range(200):
        genome = space.sample_genome(rng)
        assert len(genome) == len(space.genes) == 52
        arch = space.decode(genome)
        assert space.decode(space.encode(arch)) == arch


def test_inactive_block_slots_keep_their_genes(space):
    rng = random.Random(5)
    genome = space.sample_genome(rng)
    idx = space.gene_index
    genome[idx["s1.depth"]] = 3  # depth 4: all four slots active
    shallow = list(genome)
    shallow[idx["s1.depth"]] = 0  # depth 1: slots 2-4 inactive but keep their genes
    arch = space.decode(shallow)
    assert arch.stages[0].depth == 1
    back = space.encode(arch, base=shallow)
    assert back == shallow
    deep_again = list(back)
    deep_again[idx["s1.depth"]] = 3
    assert space.decode(deep_again) == space.decode(genome)


def test_validate_names_the_offending_field(space):
    arch = space.smallest().to_dict()
    arch["stages"][2]["width"] = 96
    with pytest.raises(AutoNADError, match=r"stages\[2\]\.width: 96 is not in search space 'autonad'"):
        space.validate(Arch.from_dict(arch))
    arch = space.smallest().to_dict()
    arch["decoder"]["pool_sizes"] = [1, 1, 2, 3]
    with pytest.raises(AutoNADError, match="pool_sizes"):
        space.validate(Arch.from_dict(arch))
    tiny_arch = SearchSpace.load("tiny").smallest()
    with pytest.raises(AutoNADError, match="not in search space 'autonad'"):
        space.validate(tiny_arch)
    conv_only = SearchSpace.load("conv")
    with pytest.raises(AutoNADError, match="op: transformer is not in search space 'conv'"):
        conv_only.validate(space.largest())


def test_uniform_sampling_covers_choices(space):
    rng = random.Random(7)
    genomes = [space.sample_genome(rng) for _ in range(600)]
    for i, gene in enumerate(space.genes):
        seen = {g[i] for g in genomes}
        assert seen == set(range(len(gene.choices))), gene.name


def test_gene_weights_bias_sampling(space):
    rng = random.Random(11)
    weights = {f"s1.b{b}.op": [0.7, 0.1, 0.1, 0.1] for b in range(1, 5)}
    counts = collections.Counter()
    for _ in range(2000):
        arch = space.sample(rng, gene_weights=weights)
        counts.update(blk.choice for blk in arch.stages[0].blocks)
    share = counts["transformer"] / sum(counts.values())
    assert 0.65 < share < 0.75


def test_largest_and_smallest(space):
    big, small = space.largest(), space.smallest()
    assert [s.depth for s in big.stages] == [4, 4, 4, 4]
    assert [s.width for s in big.stages] == [64, 128, 224, 288]
    assert big.decoder.width == 256 and big.decoder.pool_sizes == (3, 4, 5, 6)
    assert [s.width for s in small.stages] == [32, 32, 128, 192]
    assert small.decoder.edges == ("dwsep3x3",) * len(EDGE_NAMES)
    rng = random.Random(0)
    assert space.largest(rng).stages[3].width == 288


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"widht": [32]}, "unknown key 'widht'"),
        ({"ops": ["conv", "lstm"]}, "unknown block op 'lstm'"),
        ({"width": [48]}, "not a multiple of head_dim 32"),
        ({"depth": {"min": 4, "max": 1}}, "empty range"),
    ],
)
def test_bad_space_files(tmp_path, patch, message):
    import yaml

    data = yaml.safe_load(resources.resolve("search_spaces", "autonad").read_text())
    data["stages"][0].update(patch)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AutoNADError, match=message):
        SearchSpace.load(path)


# -- the head's detail path -------------------------------------------------------------------
@pytest.fixture(scope="module")
def detail_space() -> SearchSpace:
    tiny = SearchSpace.load("tiny")
    return dataclasses.replace(tiny, decoder=dataclasses.replace(tiny.decoder, detail=[0, 8, 16]))


def plain(space: SearchSpace) -> SearchSpace:
    """The space without the detail path (paper Table I's head only)."""
    return dataclasses.replace(space, decoder=dataclasses.replace(space.decoder, detail=[0]))


def test_spaces_without_a_detail_choice_have_no_detail_gene(space):
    tiny = SearchSpace.load("tiny")
    assert tiny.decoder.detail == [0] and space.decoder.detail == [0]  # shipped: the paper's head
    assert "dec.detail" not in tiny.gene_index and "dec.detail" not in space.gene_index
    assert len(tiny.genes) == 36 and len(space.genes) == 52  # the genome lengths before the detail path
    assert {tiny.sample(random.Random(s)).decoder.detail for s in range(20)} == {0}
    assert plain(tiny) == tiny


def test_detail_space_has_one_more_gene_and_round_trips(detail_space):
    assert len(detail_space.genes) == len(plain(detail_space).genes) + 1
    assert detail_space.genes[detail_space.gene_index["dec.detail"]].choices == (0, 8, 16)
    rng = random.Random(4)
    archs = [detail_space.sample(rng) for _ in range(100)]
    assert {a.decoder.detail for a in archs} == {0, 8, 16}
    for arch in archs:
        assert detail_space.decode(detail_space.encode(arch)) == arch
        assert Arch.from_dict(arch.to_dict()) == arch
        detail_space.validate(arch)


def test_validate_rejects_a_detail_width_outside_the_space(detail_space):
    arch = detail_space.smallest().to_dict()
    arch["decoder"]["detail"] = 32
    with pytest.raises(AutoNADError, match=r"decoder\.detail: 32 is not in search space 'tiny'"):
        detail_space.validate(Arch.from_dict(arch))
    arch["decoder"]["detail"] = 16
    with pytest.raises(AutoNADError, match=r"decoder\.detail: 16 is not in search space 'tiny'"):
        SearchSpace.load("tiny").validate(Arch.from_dict(arch))
    assert not SearchSpace.load("tiny").contains(Arch.from_dict(arch)) and detail_space.contains(Arch.from_dict(arch))


def test_size_counts_the_detail_choices(detail_space):
    assert detail_space.size == 3 * plain(detail_space).size


@pytest.mark.parametrize("detail", [[], [0, 8, 8], [0, -8]])
def test_bad_detail_choices_are_rejected(detail):
    with pytest.raises(AutoNADError, match="detail"):
        DecoderSpace(width=[32], detail=detail)


@pytest.mark.parametrize("stride", [0, 3, 4])
def test_a_detail_stride_other_than_full_or_half_resolution_is_rejected(stride):
    with pytest.raises(AutoNADError, match="detail_stride"):
        DecoderSpace(width=[32], detail=[0, 16], detail_stride=stride)


@pytest.mark.parametrize(
    "levels, stride, message",
    [(3, 1, "detail_levels: 3 is not 1 or 2"), (2, 2, "detail_levels: 2 starts at full resolution")],
)
def test_bad_detail_levels_are_rejected(levels, stride, message):
    with pytest.raises(AutoNADError, match=message):
        DecoderSpace(width=[32], detail=[0, 16], detail_stride=stride, detail_levels=levels)


def test_space_files_may_offer_detail_widths(tmp_path):
    import yaml

    data = yaml.safe_load(resources.resolve("search_spaces", "tiny").read_text())
    data["decoder"]["detail"] = [0, 16]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    assert SearchSpace.load(path).genes[-1].choices == (0, 16)
    data["decoder"]["detail"] = [0, -16]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AutoNADError, match="detail"):
        SearchSpace.load(path)


def test_the_fine_space_is_table_one_with_a_conv_stem_and_a_two_level_detail_choice(space):
    fine = SearchSpace.load("autonad-fine")
    assert space.stem == "patch" and fine.stem == "conv"
    assert fine.decoder.detail == [0, 16] and fine.decoder.detail_stride == 1 and fine.decoder.detail_levels == 2
    paper_head = dataclasses.replace(fine.decoder, detail=[0], detail_stride=2, detail_levels=1)
    assert dataclasses.replace(fine, name=space.name, stem="patch", description=space.description,
                               decoder=paper_head) == space  # fmt: skip
    assert len(fine.genes) == len(space.genes) + 1


def test_the_conv_stem_needs_a_stride_4_first_stage():
    data = SearchSpace.load("tiny")
    stages = [dataclasses.replace(data.stages[0], stride=2), *data.stages[1:]]
    with pytest.raises(AutoNADError, match="the conv stem replaces a stride-4 patch embedding, not 2"):
        dataclasses.replace(data, stages=stages, stem="conv")
    with pytest.raises(AutoNADError, match="stem"):
        SearchSpace.from_dict({**_tiny_dict(), "stem": "pixel"})


def _tiny_dict() -> dict:
    from autonad.config import load_yaml

    return load_yaml(resources.resolve("search_spaces", "tiny"))
