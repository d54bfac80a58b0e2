import torch

from autonad.space import SearchSpace
from autonad.train.checkpoint import load_checkpoint, save_atomic
from autonad.train.sampler import ArchSampler


def test_same_seed_same_sequence_and_resume_continues_it(tmp_path):
    space = SearchSpace.load("tiny")
    a, b = ArchSampler(space, seed=3), ArchSampler(space, seed=3)
    seq = [a.next() for _ in range(5)]
    assert seq == [b.next() for _ in range(5)]  # what two ranks with one seed do
    save_atomic({"format": "test/1", "sampler": a.state_dict()}, tmp_path / "s.pt")
    expected = [a.next() for _ in range(5)]
    resumed = ArchSampler(space, seed=99)
    resumed.load_state_dict(load_checkpoint(tmp_path / "s.pt", "test/1")["sampler"])
    assert [resumed.next() for _ in range(5)] == expected
    assert ArchSampler(space, seed=4).next() != seq[0] or ArchSampler(space, seed=5).next() != seq[0]


def test_sandwich_trains_largest_smallest_and_random():
    space = SearchSpace.load("autonad")
    sampler = ArchSampler(space, kind="sandwich", num_random=2, seed=0)
    torch.manual_seed(0)
    for _ in range(3):
        largest, smallest, *rest = sampler.next()
        assert [s.depth for s in largest.stages] == [4, 4, 4, 4]
        assert [s.width for s in largest.stages] == [64, 128, 224, 288]
        assert [s.width for s in smallest.stages] == [32, 32, 128, 192]
        assert len(rest) == 2 and all(space.contains(a) for a in rest)
    assert sampler.distills and not ArchSampler(space).distills
