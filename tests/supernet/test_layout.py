"""Tensor layout: spatial ops see true spatial neighbours and channels keep their meaning.

A layout scramble (e.g. reshaping (B, N, C) tokens to (B, C, H, W) with a bare `.view`) breaks
translation equivariance and locality; these tests would catch it.
"""

from __future__ import annotations

import pytest
import torch

from autonad.space import BlockArch, SearchSpace
from autonad.supernet.functional import acmix_gather, kernel_positions, spatial_shift
from autonad.supernet.operators import SuperACmixConv, SuperAttention, SuperShiftMLP
from autonad.supernet.supernet import SuperBlock

HEAD_DIM, WIDTH = 4, 16


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module.eval()


def _acmix(kernel: int, random: bool = True) -> SuperACmixConv:
    mixer = SuperACmixConv(HEAD_DIM, WIDTH, 5)
    if random:
        _randomize(mixer)
    mixer.set_active(WIDTH, kernel)
    return mixer


def _qkv(h: int, w: int, seed: int = 0, border: int = 0) -> torch.Tensor:
    """Random interleaved q/k/v map; zero within ``border`` pixels of the edges if given."""
    x = torch.randn(1, h, w, 3 * WIDTH, generator=torch.Generator().manual_seed(seed))
    if border:
        inside = torch.zeros(1, h, w, 1)
        inside[:, border:-border, border:-border] = 1.0
        x = x * inside
    return x


def _assert_translation_equivariant(op, x: torch.Tensor, dy: int, dx: int) -> None:
    """op(roll(x)) == roll(op(x)) for an input whose content is far enough from the borders that
    neither padding nor the roll's wrap-around reaches it (a circular-safe interior)."""
    with torch.no_grad():
        expected = torch.roll(op(x), shifts=(dy, dx), dims=(1, 2))
        shifted = op(torch.roll(x, shifts=(dy, dx), dims=(1, 2)))
    torch.testing.assert_close(shifted, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [3, 5])
def test_acmix_is_translation_equivariant(kernel):
    _assert_translation_equivariant(_acmix(kernel), _qkv(16, 17, border=6), 2, 3)


@pytest.mark.parametrize("kernel", [3, 5])
def test_acmix_impulse_stays_in_its_kernel_window(kernel):
    """One pixel of one input channel reaches exactly its k x k window, in the channels of its
    head-dim index for every head (channel j * head_dim + d)."""
    mixer, r = _acmix(kernel), kernel // 2
    h, w, y0, x0 = 11, 13, 5, 6
    head, dim, which = 2, 3, 1  # k of head 2, head-dim index 3
    qkv = torch.zeros(1, h, w, 3 * WIDTH)
    qkv[0, y0, x0, (head * HEAD_DIM + dim) * 3 + which] = 1.0
    with torch.no_grad():
        response = (mixer(qkv) - mixer(torch.zeros_like(qkv)))[0].abs()
    where = response.sum(-1) > 0
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[y0 - r : y0 + r + 1, x0 - r : x0 + r + 1] = True
    assert torch.equal(where, expected)
    channels = set(torch.nonzero(response.sum((0, 1))).flatten().tolist())
    assert channels == {j * HEAD_DIM + dim for j in range(WIDTH // HEAD_DIM)}


@pytest.mark.parametrize("kernel", [3, 5])
def test_acmix_with_shift_init_is_paper_eq_25(kernel):
    """At its shift initialisation the conv sums the k*k position features, each shifted to its
    kernel offset: y(i, j) = sum_(a, b) f_(a, b)(i + a, j + b) (eqs. 10, 25); the k=3 kernel is the
    centred part of the stored k=5 one."""
    mixer = _acmix(kernel, random=False)
    _randomize(mixer.fc)
    qkv = _qkv(9, 10)
    with torch.no_grad():
        out = mixer(qkv)
        padded = torch.nn.functional.pad(qkv, (0, 0, 2, 2, 2, 2))  # zero padding of 2 around H, W
        f = mixer.fc(acmix_gather(padded, HEAD_DIM))  # (1, 13, 14, head_dim, k*k) position features
    expected = torch.zeros(1, 9, 10, HEAD_DIM)
    for p, (dy, dx) in enumerate(kernel_positions(kernel)):
        expected += f[:, 2 + dy : 11 + dy, 2 + dx : 12 + dx, :, p]
    # every head gets the same aggregate at initialisation; channel j * head_dim + d
    torch.testing.assert_close(out, expected.repeat(1, 1, 1, WIDTH // HEAD_DIM), rtol=1e-5, atol=1e-5)


def test_kernel_positions_put_smaller_kernels_first():
    five = kernel_positions(5)
    assert five[0] == [0, 0]
    assert {tuple(o) for o in five[:9]} == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert five[:9] == kernel_positions(3)


@pytest.mark.parametrize("first, directions", [(0, "down up right left"), (2, "right left down up")])
def test_spatial_shift_follows_paper_eqs_18_19(first, directions):
    """Channel group c % 4 moves one pixel: eq. 18 (q) down, up, right, left; eq. 19 (k) right,
    left, down, up."""
    move = {"down": (1, 0), "up": (-1, 0), "right": (0, 1), "left": (0, -1)}
    x = torch.zeros(1, 7, 8, 8)
    x[0, 3, 4, :] = torch.arange(1.0, 9.0)
    y = spatial_shift(x, first)
    for c, direction in enumerate(directions.split() * 2):
        dy, dx = move[direction]
        where = torch.nonzero(y[0, :, :, c]).tolist()
        assert where == [[3 + dy, 4 + dx]], (c, direction, where)
        assert y[0, 3 + dy, 4 + dx, c] == c + 1


def test_spatial_shift_keeps_the_border_like_s2mlp():
    x = torch.randn(1, 5, 6, 4)
    y = spatial_shift(x, 0)
    torch.testing.assert_close(y[:, 0, :, 0], x[:, 0, :, 0])  # first row of the "down" group stays
    torch.testing.assert_close(y[:, 1:, :, 0], x[:, :-1, :, 0])


def test_shift_mlp_is_translation_equivariant():
    """Including the split attention, whose global pooling sees the same content after a shift."""
    mixer = _randomize(SuperShiftMLP(WIDTH))
    _assert_translation_equivariant(mixer, _qkv(14, 15, border=4), 2, 3)


def test_attention_is_equivariant_to_shifts_by_the_reduction_ratio():
    attention = SuperAttention(HEAD_DIM, sr_ratio=2)
    x = _qkv(8, 10)
    with torch.no_grad():
        expected = torch.roll(attention(x), shifts=(2, 4), dims=(1, 2))
        shifted = attention(torch.roll(x, shifts=(2, 4), dims=(1, 2)))
    torch.testing.assert_close(shifted, expected, rtol=1e-5, atol=1e-5)


def test_block_with_conv_op_is_local():
    """A whole block (LN, q/k/v, ACmix k=5, projection, MixFFN with its 3x3 depthwise conv)
    spreads a one-pixel change at most 2 + 1 pixels."""
    space = SearchSpace.load("tiny")
    block = _randomize(SuperBlock(space.stages[0], space.head_dim, "cross", 0.0))
    width = max(space.stages[0].width)
    block.set_active(width, BlockArch("conv", 2.0, 5))
    x = torch.randn(1, 12, 13, width, generator=torch.Generator().manual_seed(1))
    x2 = x.clone()
    x2[0, 6, 5] += 1.0
    with torch.no_grad():
        where = (block(x2) - block(x))[0].abs().sum(-1) > 1e-6
    expected = torch.zeros(12, 13, dtype=torch.bool)
    expected[3:10, 2:9] = True
    assert torch.equal(where, expected)
