"""Time to quality (SPEC section 9, "learning"): optimiser steps and seconds until the defect IoU
(pooled over defect classes, on whole validation images) reaches 0.3 and 0.5, for extracted subnets
(all-conv, all-transformer, hybrid) trained from scratch and for a plain U-Net of similar FLOPs.

Every case trains with the library's pieces and the MT recipe's loss: the transform pipeline
(defect-aware crops at native scale), CE with sqrt-inverse-frequency class weights + Dice
(SegLoss/JointLoss), AdamW with warm-up and poly decay, the metrics module. A case changes one
suspect at a time (stem, CaP loss, lr, warm-up, bf16 autocast), so the table says what each changed.

    python bench/time_to_quality.py --dataset mt --data-root ../shared/datasets/magnetic_tile \
        --steps 600 --skip-done

Each finished case is written to bench/results/<name>.json at once (`--skip-done` resumes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

from autonad.data import SegmentationDataset, Transform, TransformConfig, compute_norm_stats, eval_loader, open_dataset
from autonad.metrics import SegMetrics
from autonad.space import Arch, BlockArch, DecoderArch, HeadsArch, SearchSpace, StageArch
from autonad.supernet import Supernet, SupernetConfig
from autonad.supernet.complexity import complexity
from autonad.train.baseline import UNet
from autonad.train.batches import EpochBatches
from autonad.train.evaluate import bf16_autocast
from autonad.train.losses import JointLoss, SegLoss, sqrt_inverse_frequency
from autonad.train.optim import build_optimizer, decay_with_warmup
from autonad.ui import progress

THRESHOLDS = (0.3, 0.5)
WIDTHS = (64, 128, 160, 256)  # stage widths of the three subnets (~the middle of paper Table I)
OPS = {
    "conv": ("conv3", "conv3", "conv3", "conv3"),
    "transformer": ("transformer",) * 4,
    "hybrid": ("conv3", "conv3", "transformer", "transformer"),  # convolutions early, attention late
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One training run: a model and the settings it trains with (defaults = the library's)."""

    model: str  # conv | transformer | hybrid | unet
    stem: str = "patch"  # subnets: the stage-1 embedding (the paper's 7x7/s4 conv + LN, or "conv": ConvStem)
    lr: float = 1e-3
    warmup_steps: int = 50
    cap: bool = False  # add the CaP head and train with the joint 0.5/0.5 loss
    bf16: bool = True  # bf16 autocast for the forward pass on CPU
    detail: int = 0  # subnets: width of the head's detail path (0: the paper's head; 1/2 resolution by default)
    detail_stride: int = 2  # 1: the detail path at full resolution (the space's decoder.detail_stride)
    detail_levels: int = 1  # 2: the U-Net-like two-level detail path (full and 1/2 resolution; detail_stride 1)
    unet_norm: str = "bn"  # the U-Net's normalisation: "bn" (batch norm) or "gn" (GroupNorm, 8 channels per group)
    note: str = ""

    @property
    def name(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                   if f.name not in ("model", "note") and getattr(self, f.name) != f.default]  # fmt: skip
        return self.model + (f" [{', '.join(changed)}]" if changed else "")


def cases(suite: str) -> list[Case]:
    base = [Case("unet"), Case("hybrid"), Case("conv"), Case("transformer")]
    suspects = [
        Case("hybrid", stem="conv", note="two 3x3/s2 convs (conv stem) instead of the paper's 7x7/s4 patch embedding"),
        Case("hybrid", cap=True, note="CaP joint loss on (w_seg 0.5): halves the segmentation gradient"),
        Case("hybrid", bf16=False, note="fp32 instead of bf16 autocast"),
        Case("hybrid", lr=5e-4, note="the paper's lr"),
        Case("conv", stem="conv", note="the conv stem, all-conv subnet"),
        Case("hybrid", detail=16, note="a 16-wide detail path refines the 1/4-resolution scores at 1/2"),
        Case("hybrid", lr=5e-4, detail=16, note="the detail path at the paper's lr"),
        Case("conv", detail=16, note="the detail path, all-conv subnet"),
        Case("hybrid", detail=16, detail_stride=1, note="the detail path at full resolution"),
        Case("unet", unet_norm="gn", note="GroupNorm (as the subnets' decoder) instead of batch norm"),
        Case("hybrid", stem="conv", detail=16, detail_stride=1, note="the conv stem and a full-resolution detail path"),
        Case("conv", stem="conv", detail=16, detail_stride=1, note="the same, all-conv subnet"),
        Case(
            "hybrid", stem="conv", detail=32, detail_stride=1, note="the conv stem and a 32-wide full-resolution path"
        ),
        Case("hybrid", stem="conv", detail=16, detail_stride=1, detail_levels=2,
             note="the conv stem and a two-level (full + 1/2 resolution) U-Net-like detail path"),
        Case("conv", stem="conv", detail=16, detail_stride=1, detail_levels=2, note="the same, all-conv subnet"),
        Case("hybrid", stem="conv", detail=8, detail_stride=1, detail_levels=2, note="the same, 8 wide (16 at 1/2)"),
    ]  # fmt: skip
    return base if suite == "base" else base[:2] + suspects[:1] + base[2:] + suspects[1:]


def subnet_arch(kind: str) -> Arch:
    stages = tuple(
        StageArch(w, tuple(BlockArch.from_choice(op, 4.0) for _ in range(2))) for w, op in zip(WIDTHS, OPS[kind])
    )
    return Arch(stages, DecoderArch.upernet(128), HeadsArch())


def build(case: Case, num_classes: int, space: SearchSpace, size: tuple[int, int]) -> torch.nn.Module:
    if case.model == "unet":
        net = UNet(num_classes, unet_widths(space, num_classes, size))
        return net if case.unet_norm == "bn" else with_group_norm(net)
    config = dataclasses.replace(SupernetConfig.load("autonad"), drop_path=0.0)
    arch = subnet_arch(case.model)
    arch = dataclasses.replace(arch, decoder=dataclasses.replace(arch.decoder, detail=case.detail),
                               heads=HeadsArch(cap=case.cap))  # fmt: skip
    space = dataclasses.replace(space, stem=case.stem)
    if case.detail:
        decoder = dataclasses.replace(space.decoder, detail=[0, case.detail], detail_stride=case.detail_stride,
                                      detail_levels=case.detail_levels)  # fmt: skip
        space = dataclasses.replace(space, decoder=decoder)
    return Supernet(config, num_classes, space).extract(arch)


def with_group_norm(net: torch.nn.Module, channels_per_group: int = 8) -> torch.nn.Module:
    """`net` with every BatchNorm2d replaced by a GroupNorm of the same width."""
    for name, child in net.named_children():
        if isinstance(child, torch.nn.BatchNorm2d):
            setattr(net, name, torch.nn.GroupNorm(child.num_features // channels_per_group, child.num_features))
        else:
            with_group_norm(child, channels_per_group)
    return net


def unet_widths(space: SearchSpace, num_classes: int, size: tuple[int, int]) -> tuple[int, ...]:
    """U-Net widths scaled so its FLOPs match the hybrid subnet's (the comparison's 'similar FLOPs')."""
    target = complexity(build(Case("hybrid"), num_classes, space, size), size).flops
    best = None
    for base in range(8, 49, 2):
        widths = tuple(base * 2**i for i in range(5))
        flops = complexity(UNet(num_classes, widths), size).flops
        if best is None or abs(flops - target) < abs(best[1] - target):
            best = (widths, flops)
    return best[0]


def ffn_space() -> SearchSpace:
    """Paper Table I with FFN ratio 4 allowed everywhere (the subnets' stage-1/2 MixFFN at 7.5-9 is
    4x the FLOPs of a plain CNN stage; ratio 4 keeps the three subnets comparable to a U-Net)."""
    space = SearchSpace.load("autonad")
    stages = tuple(dataclasses.replace(st, ffn_ratio=tuple(sorted({4.0, *st.ffn_ratio}))) for st in space.stages)
    return dataclasses.replace(space, stages=stages)


def defect_iou(net: torch.nn.Module, loader, num_classes: int, bf16: bool) -> tuple[float, dict[str, float | None]]:
    """Pooled defect IoU and the IoU of each defect class (thin classes can hide behind a pooled figure)."""
    metrics = SegMetrics(num_classes)
    net.eval()
    with torch.no_grad(), autocast(bf16):
        for images, masks in loader:
            metrics.update(net(images)["seg"].float(), masks)
    net.train()
    report = metrics.compute()
    per_class = {k: None if v is None else round(v, 4) for k, v in list(report.per_class_iou.items())[1:]}
    return report.pooled_iou or 0.0, per_class


def autocast(bf16: bool):
    return bf16_autocast("cpu", bf16)


def run_case(case: Case, data: dict, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    net = build(case, data["classes"], data["space"], data["size"]).to(memory_format=torch.channels_last)
    flops = complexity(net, data["size"]).flops
    seg = SegLoss(dice_weight=1.0, class_weights=data["class_weights"])
    loss_fn = JointLoss(seg) if case.cap else None
    optimizer = build_optimizer(net, case.lr, 0.01)
    scheduler = decay_with_warmup(optimizer, args.steps, case.warmup_steps, decay="poly")
    train = data["train"]
    curve, reached, step, seconds, epoch = [], {}, 0, 0.0, 0
    with progress() as bar:
        task = bar.add_task(case.name, total=args.steps)
        while step < args.steps:
            for batch in EpochBatches(len(train), args.batch, 0, epoch):
                images, masks = zip(*(train[k] for k in batch))
                images = torch.stack(images).contiguous(memory_format=torch.channels_last)
                masks = torch.stack(masks)
                start = time.perf_counter()
                with autocast(case.bf16):
                    out = net(images)
                    logits = out["seg"].float()
                    loss = seg(logits, masks) if loss_fn is None else loss_fn(logits, masks, out["cap"].float())[0]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                optimizer.step()
                scheduler.step()
                seconds += time.perf_counter() - start
                step += 1
                bar.update(task, advance=1)
                if step % args.eval_every == 0 or step == args.steps:
                    iou, per_class = defect_iou(net, data["val"], data["classes"], case.bf16)
                    curve.append({"step": step, "train_s": round(seconds, 1), "defect_iou": round(iou, 4),
                                  "class_iou": per_class, "loss": round(float(loss.detach()), 4)})  # fmt: skip
                    for t in THRESHOLDS:
                        if iou >= t and str(t) not in reached:
                            reached[str(t)] = {"steps": step, "seconds": round(seconds, 1)}
                if step >= args.steps:
                    break
            epoch += 1
    return {
        "case": case.name, "model": case.model, "settings": dataclasses.asdict(case), "flops": flops,
        "params": sum(p.numel() for p in net.parameters()), "curve": curve, "reached": reached,
        "best_defect_iou": max(c["defect_iou"] for c in curve), "s_per_step": round(seconds / step, 4),
    }  # fmt: skip


def load_data(args: argparse.Namespace) -> dict:
    source = open_dataset(args.dataset, args.data_root or None, seed=0)
    if args.defect_only:
        keep = [i for i in source.ids if source.samples[i].group != "Free" and source.present(i)]
        for sample_id in set(source.ids) - set(keep):
            source.drop(sample_id)
    splits = source.splits
    size = (args.crop, args.crop)
    mean, std = compute_norm_stats(source, ids=splits["train"], seed=0)
    config = TransformConfig(size=size, scale=args.scale, defect_crops=args.defect_crops, zoom=(0.8, 1.25),
                             mean=tuple(mean), std=tuple(std))  # fmt: skip
    train = SegmentationDataset(source, "train", Transform(config, train=True))
    val = SegmentationDataset(source, splits["val"][: args.val_images], Transform(config, train=False))
    counts = [0] * source.num_classes
    train_ids = set(splits["train"])
    for sample in source.verify():
        if sample.id in train_ids:
            counts = [c + p for c, p in zip(counts, sample.pixels)]
    info = {"dataset": source.name, "train_images": len(train), "val_images": len(val), "crop": list(size),
            "scale": args.scale, "defect_crops": args.defect_crops, "defect_only": args.defect_only}  # fmt: skip
    return {"train": train, "val": eval_loader(val, 4), "classes": source.num_classes, "size": size,
            "space": ffn_space(), "info": info, "class_weights": sqrt_inverse_frequency(counts)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mt")
    parser.add_argument("--data-root", default="../shared/datasets/magnetic_tile")
    parser.add_argument("--defect-only", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--defect-crops", type=float, default=0.7)
    parser.add_argument("--val-images", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--suite", choices=["base", "suspects"], default="suspects")
    parser.add_argument("--only", nargs="*", help="case names to run")
    parser.add_argument("--name", default="time_to_quality")
    parser.add_argument("--skip-done", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = RESULTS / f"{args.name}.json"
    done = json.loads(path.read_text()) if args.skip_done and path.is_file() else {}
    results = {c["case"]: c for c in done.get("cases", [])}
    data = load_data(args)
    header = {"benchmark": "time_to_quality", "data": data["info"], "steps": args.steps, "batch": args.batch,
              "threads": args.threads, "thresholds": list(THRESHOLDS), "metric": "pooled defect IoU, whole val images",
              "command": "python " + " ".join(sys.argv)}  # fmt: skip
    earlier = [*done.get("earlier_commands", []), *([done["command"]] if done.get("command") else [])]
    header["earlier_commands"] = [c for c in dict.fromkeys(earlier) if c != header["command"]]  # cases they ran
    for case in cases(args.suite):
        if case.name in results or (args.only and case.name not in args.only):
            continue
        results[case.name] = {**run_case(case, data, args), "note": case.note}
        report(args.name, {**header, "cases": list(results.values())})
        r = results[case.name]
        print(f"{case.name}: best {r['best_defect_iou']:.3f}, reached {r['reached']}, {r['s_per_step']} s/step",
              file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
