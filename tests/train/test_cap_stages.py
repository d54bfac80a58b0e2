"""The two CaP stages (paper 000's presence head, paper 004's class stage) learn from their losses."""

from __future__ import annotations

import torch

from autonad.space import HeadsArch
from autonad.supernet import Supernet, SupernetConfig
from autonad.train.losses import JointLoss, SegLoss, class_balanced_pos_weight, classes_present


def _toy_batch(n: int = 24, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose defect class is told by the colour channel it brightens (a separable case); every
    fourth image is clean, and some carry two classes."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, size, size, generator=gen) * 0.1
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        if i % 4 == 3:
            continue
        for c in {i % 3, (i // 5) % 3} if i % 2 else {i % 3}:
            y, x = 4 + 8 * c, 4 + (i % 5) * 4
            images[i, c, y : y + 6, x : x + 6] += 2.0
            masks[i, y : y + 6, x : x + 6] = c + 1
    return images, masks


def test_class_logits_receive_gradient_and_learn_a_separable_case():
    torch.manual_seed(0)
    supernet = Supernet(SupernetConfig.load("tiny"), num_classes=4)  # tiny.yaml: a multi-label CaP head
    net = supernet.extract(supernet.space.smallest(heads=HeadsArch(cap=True, classes=True))).train()
    images, masks = _toy_batch()
    wanted = classes_present(masks, 4)
    defective = wanted.any(dim=1)
    weight = class_balanced_pos_weight(wanted[defective].bool().tolist())
    loss_fn = JointLoss(SegLoss(), class_pos_weight=weight)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    first = None
    for step in range(150):
        out = net(images)
        loss, parts = loss_fn(out["seg"], masks, out["cap"], out["cls"])
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            first = parts["classes"]
            class_rows = net.cap_head.fc2.weight.grad[1:]
            assert class_rows.abs().sum() > 0  # the class logits are trained (their gradient was 0 before)
        optimizer.step()
    assert parts["classes"] < 0.3 * first
    net.eval()
    with torch.no_grad():
        out = net(images)
    hits = (out["cls"][defective] > 0) == wanted[defective].bool()
    assert hits.float().mean() >= 0.95  # every class of every defective image, told apart
    assert ((out["cap"] > 0) == defective).float().mean() >= 0.95
