import math

import torch
from torch import nn

from autonad.train.optim import build_optimizer, cosine_with_warmup, decay_with_warmup


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Linear(8, 4))
    opt = build_optimizer(model, lr=5e-4, weight_decay=0.05)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(no_decay["params"]) == 4  # conv bias, GN weight + bias, linear bias


def test_cosine_schedule_with_warmup():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = cosine_with_warmup(opt, total_steps=110, warmup_steps=10, min_lr_ratio=0.0)
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1 / 11 and all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # linear warm-up
    assert lrs[10] == 1.0
    assert math.isclose(lrs[60], 0.5, abs_tol=1e-9)  # half way through the cosine
    assert lrs[-1] < 0.001 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_poly_schedule_with_warmup():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = decay_with_warmup(opt, total_steps=105, warmup_steps=5, min_lr_ratio=0.0, decay="poly", power=0.9)
    lrs = []
    for _ in range(105):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[5] == 1.0 and all(a < b for a, b in zip(lrs[:5], lrs[1:6]))
    assert math.isclose(lrs[55], 0.5**0.9, rel_tol=1e-9)  # (1 - 50/100) ** 0.9
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:])) and lrs[-1] < 0.02
