"""Render docs/results.md (`make results`) from the benchmark JSON in bench/results/ and the run
folders the benchmarks name: tables next to the paper's figures, training curves, Pareto fronts,
latency-prior heatmaps and prediction overlays (PNG files in docs/img/).

Every figure on the page comes from one JSON file, whose producing command is printed with it;
a benchmark that has not run is listed with the command that runs it.

    python bench/report.py            # -> docs/results.md, docs/img/*.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from common import RESULTS
from run_all import BY_NAME

ROOT = Path(__file__).resolve().parent.parent
PAPER_II = {"neu-seg": (84.6, 91.4, "200x200, 800 + 500 epochs, RTX 3090"),
            "mt": (81.3, 89.3, "320x320, 3000 + 500 epochs, RTX 3090")}  # fmt: skip
PAPER_V = {"conv": (79.7, 88.2), "transformer": (79.9, 88.4), "mlp": (79.5, 88.1), "conv+transformer": (80.3, 88.6),
           "conv+mlp": (80.7, 88.9), "transformer+mlp": (80.9, 89.1), "conv+transformer+mlp": (81.3, 89.3)}  # fmt: skip
PAPER_VI_NEU = {"UPerNet (PPM 1,2,3,6; 1x1 laterals; 3x3 FPN)": (83.6, 90.8), "MFAM (searched)": (84.6, 91.4)}
PAPER_VII = {"classical": (62.1, 83.9), "entangled": (72.5, 84.2), "cross": (79.0, 84.6)}
FULL = "conv+transformer+mlp"
CANDIDATE_NAMES = {"largest": "largest subnet", "random": "random subnet", "upernet": "searched encoder + UPerNet",
                   "unet": "plain U-Net (scratch)"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    args = p.parse_args(argv)
    page = Page(args.out)
    for section in (headline, learning, neu_pipeline, mt_pipeline, ablations, cap_on_off, decisions, ensembles,
                    ranking, latency,
                    search, overhead, export_round_trip, gpu_check):  # fmt: skip
        section(page)
    page.write()
    default = args.out.resolve() == (ROOT / "docs" / "results.md").resolve()
    write_headline(page.headline, RESULTS if default else args.out.parent)
    print(f"wrote {args.out} ({len(page.images)} images in {page.img})")
    return 0


class Page:
    def __init__(self, path: Path):
        self.path, self.img = path, path.parent / "img"
        self.lines: list[str] = [HEADER]
        self.images: list[Path] = []
        self.headline: dict[str, dict] = {}  # bench/results/headline.json: key -> value, protocol, budget, command

    def record(self, key: str, value, protocol: str, budget: str, command: str) -> None:
        self.headline[key] = {"value": value, "protocol": protocol, "budget": budget, "command": command}

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def source(self, name: str) -> dict | None:
        """The benchmark's JSON (None if not run), with the command and file noted on the page."""
        path = RESULTS / f"{name}.json"
        bench = BY_NAME[name]
        command = " ".join(bench.command())
        if not path.exists():
            self.add(f"_Not run yet._ Command: `{command}` (budget {bench.budget}).", "")
            return None
        data = json.loads(path.read_text())
        command = data.get("command", command)  # as it was run, when the benchmark records it
        self.add(f"Command: `{command}` · JSON: [`bench/results/{name}.json`](../bench/results/{name}.json)", "")
        return data

    def table(self, header: list[str], rows: list[list]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        self.add(*("| " + " | ".join(str(c) for c in row) + " |" for row in rows), "")

    def copy_image(self, src: str | Path, name: str, caption: str) -> None:
        src = ROOT / src
        if src.exists():
            self.img.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, self.img / name)
        if (self.img / name).exists():  # copied now, or earlier from a run folder this machine lacks
            self.picture(name, caption)

    def picture(self, name: str, caption: str) -> None:
        self.images.append(self.img / name)
        self.add(f"![{caption}](img/{name})", f"_{caption}_", "")

    def figure(self, name: str):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.img.mkdir(parents=True, exist_ok=True)
        return plt, self.img / name

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines).rstrip() + "\n")


HEADER = """# AutoNAD results

What AutoNAD reaches, next to the papers' figures, measured by the benchmarks in [`bench/`](../bench).
Every number below comes from the JSON file named above its table, written by the command named
there. Regenerate everything with `make bench` (hours on 2 CPU cores; it resumes) and this page with
`make results`.

**Budget.** Unless a table says otherwise, everything ran on the project's 2-core x86 CPU machine
(no GPU was available to this work). The paper trains supernets for 800-3000 epochs and retrains for
500 epochs at 200x200-320x320 on RTX 3090 GPUs; our runs are minutes to hours at 96x96-128x128, so
absolute accuracy is far below the paper's and every figure carries its budget. Comparisons inside
one table are at equal budget.
"""


def write_headline(entries: dict[str, dict], folder: Path) -> None:
    """Merge this page's headline figures into headline.json (bench/results/ for the real page; other
    keys are kept)."""
    path = folder / "headline.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(entries)
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


# -- learning (time to quality, throughput, thin defects, MT supernet) ------------------------------
def learning(page: Page) -> None:
    page.add("## Learning real defects at the user's budget", "")
    page.add(
        "Every headline figure of this section, with its protocol, budget and command, is also in "
        "[`bench/results/headline.json`](../bench/results/headline.json).",
        "",
    )
    page.add("### Time to quality: steps until the defect IoU reaches 0.3 / 0.5", "")
    page.add(
        "Models trained from scratch by the same loop (native-scale 128x128 crops, 70% defect-centred, CE with",
        "sqrt-inverse-frequency class weights + Dice, AdamW with warm-up and poly decay, bf16 autocast),",
        "defect IoU pooled over defect classes on whole validation images. Each row changes one suspect.",
        "",
    )
    datasets = (("time_to_quality_neu", "NEU-Seg"), ("time_to_quality", "MT (defect images)"),
                ("time_to_quality_thin", "thin-defect folder data (class1 = scratch, class2 = pit)"))  # fmt: skip
    for name, dataset in datasets:
        page.add(f"**{dataset}**", "")
        data = page.source(name)
        if data is None:
            continue
        _time_to_quality(page, data, name)
    _throughput(page)
    _thin_defects(page)
    _mt_supernet(page)
    _demo(page)


def _time_to_quality(page: Page, data: dict, name: str) -> None:
    rows, budget = [], f"{data['steps']} steps of batch {data['batch']}, {data['threads']} threads"
    for command in data.get("earlier_commands", []):
        page.add(f"Earlier cases (`--skip-done` kept them): `{command}`", "")
    for c in data["cases"]:
        r, last = c["reached"], c["curve"][-1]
        per_class = ", ".join(f"{k} {v:.2f}" for k, v in last.get("class_iou", {}).items() if v is not None) or "-"
        rows.append([c["case"], gflops(c["flops"]), millions(c["params"]), r.get("0.3", {}).get("steps", "-"),
                     r.get("0.5", {}).get("steps", "-"), f"{c['best_defect_iou']:.3f}", per_class, c["s_per_step"],
                     c.get("note", "")])  # fmt: skip
    page.table(["model [suspect]", "GFLOPs", "params", "steps to 0.3", "steps to 0.5", "best IoU",
                "per class (last)", "s/step", "what"], rows)  # fmt: skip
    expected = len(cases_in(data))
    if len(data["cases"]) < expected and "--only" not in data["command"]:
        page.add(f"_Partial: {len(data['cases'])} of {expected} cases ran; `--skip-done` continues._", "")
    plt, path = page.figure(f"{name}.png")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for c in data["cases"]:
        ax.plot([p["step"] for p in c["curve"]], [p["defect_iou"] for p in c["curve"]], label=c["case"])
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set(xlabel="optimiser step", ylabel="defect IoU (val)", title=name)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    page.picture(path.name, f"defect IoU vs step, {budget}")
    by = {c["case"]: c for c in data["cases"]}
    hybrid = HEADLINE_HYBRID.get(name)
    if hybrid in by and "unet" in by:
        suffix = "" if name == "time_to_quality" else "_neu"
        for key, case in (("hybrid", hybrid), ("unet", "unet")):
            value = by[case]["reached"].get("0.5", {}).get("steps")
            page.record(
                f"learning.{key}_steps_to_0.5{suffix}",
                value,
                f"{HEADLINE_DATA[name]} train crops 128x128 native scale, pooled defect IoU on "
                f"{data['data']['val_images']} whole val images; null = not reached (best "
                f"{by[case]['best_defect_iou']:.3f}); hybrid: {hybrid}",
                budget,
                data["command"],
            )


# the hybrid each time-to-quality headline compares with the U-Net: MT (the protocol) with the
# default supernet's stem and detail path, NEU-Seg with the paper's Table I subnet
HEADLINE_HYBRID = {"time_to_quality": "hybrid [stem=conv, detail=16, detail_stride=1, detail_levels=2]",
                   "time_to_quality_neu": "hybrid"}  # fmt: skip
HEADLINE_DATA = {"time_to_quality": "MT defect images", "time_to_quality_neu": "NEU-Seg"}


def cases_in(data: dict) -> list:
    import time_to_quality

    return time_to_quality.cases("suspects")


def _throughput(page: Page) -> None:
    page.add("### Training throughput on this CPU", "")
    data = page.source("train_throughput")
    if data is None:
        return
    rows = []
    for part in ("supernet_training", "retraining"):
        for mode, m in data.get(part, {}).items():
            rows.append([part.replace("_", " "), mode, m["images_per_s"], f"{m['speedup_vs_fp32']:.2f}x",
                         m["warmup_s"]])  # fmt: skip
    page.table(["what", "mode", "images/s", "vs fp32", "warm-up s"], rows)
    page.add(
        f"{data['cpu']}, native bf16: {data['native_bf16']}, {data['threads']} threads, batch {data['batch']} "
        f"at {data['input_size']}x{data['input_size']}; modes timed round-robin, medians.",
        "",
    )
    for part, key in (("supernet_training", "learning.supernet_images_per_s_speedup"),
                      ("retraining", "learning.retrain_images_per_s_speedup")):  # fmt: skip
        modes = data.get(part, {})
        if modes:
            best = max(modes.values(), key=lambda m: m["speedup_vs_fp32"])
            page.record(
                key,
                best["speedup_vs_fp32"],
                f"{part}: best mode vs fp32 contiguous, images/s",
                f"batch {data['batch']}, {data['input_size']}^2, {data['threads']} threads",
                data["command"],
            )


def _thin_defects(page: Page) -> None:
    page.add("### Thin defects: `autonad search` with its defaults vs a U-Net of the same wall time", "")
    data = page.source("thin_defect_search")
    if data is None or "search" not in data:
        return
    s = data["search"]
    runs = [(run, "earlier defaults") for run in data.get("earlier", []) if "search" in run]
    rows = []
    for run, when in [*runs, (data, "today's defaults")]:
        rows += _thin_rows(run, when)
    names = list(s["test"]["per_class_iou"])
    page.table(["model", "defaults", "wall min", "defect mIoU", "pooled IoU", *(f"IoU {n}" for n in names)],
               [[r[0], r[1], "" if r[2] is None else f"{r[2]:.0f}", *r[3:]] for r in rows])  # fmt: skip
    split = data["dataset"].get("split")
    if split:
        page.add(f"Split: {split['train']} train / {split['val']} validation / {split['test']} test images; the "
                 "search's fitness is the validation mIoU, every figure here is on the test images.", "")  # fmt: skip
    if "unet" in data:
        budget = f"{s['wall_s'] / 60:.0f} min wall time each on 2 CPU cores"
        protocol = "generated thin-defect folder (80 images 480x320), defect-class mIoU on the test split"
        page.record("learning.thin_defect_iou", s["test"]["miou_fg"], protocol, budget, data["command"])
        page.record("learning.thin_defect_unet_iou", data["unet"]["test"]["miou_fg"], protocol, budget, data["command"])


def _thin_rows(run: dict, when: str) -> list[list]:
    """The searched model's and the U-Net's rows of one thin-defect run."""
    s = run["search"]
    supernet = s.get("supernet", "autonad")
    head = ", two-level detail path" if s.get("space_decoder", {}).get("detail_levels", 1) == 2 else ""
    ft = s.get("finetune")
    how = "inherited weights" if not ft else f"fine-tuned {ft['minutes']:g} min" if ft.get("minutes") else (
        f"fine-tuned {ft['steps']} steps")  # fmt: skip
    when += f" ({s['precision']})" if s.get("precision") else ""
    rows = [[f"searched on `{supernet}`{head} ({how}, exported)", when, s["wall_s"] / 60,
             pct(s["test"]["miou_fg"]), pct(s["test"]["pooled_iou"]),
             *(pct(v) for v in s["test"]["per_class_iou"].values())]]  # fmt: skip
    for name, row in s.get("inherited", {}).items():
        rows.append([f"{name} subnet of `{supernet}` (inherited weights)", when, None, pct(row["miou_fg"]),
                     pct(row["pooled_iou"]), *(pct(v) for v in row["per_class_iou"].values())])  # fmt: skip
    if "unet" in run:
        u = run["unet"]
        rows.append([f"U-Net {u['widths']} (scratch, --budget {u['budget_minutes']:.0f}m)", when, u["wall_s"] / 60,
                     pct(u["test"]["miou_fg"]), pct(u["test"]["pooled_iou"]),
                     *(pct(v) for v in u["test"]["per_class_iou"].values())])  # fmt: skip
    return rows


def _mt_supernet(page: Page) -> None:
    page.add("### Magnetic Tile with its defaults: the supernet's inherited per-class IoU", "")
    data = page.source("mt_supernet")
    if data is None:
        return
    classes = list(data["inherited"]["largest"]["per_class_iou"])
    rows = [[name, pct(r["miou"]), pct(r["pooled_iou"]), *(pct(r["per_class_iou"][c]) for c in classes),
             pct(r.get("seg_recall")), pct(r.get("seg_accuracy"))]
            for name, r in data["inherited"].items()]  # fmt: skip
    page.table(["subnet", "mIoU", "pooled IoU", *(f"IoU {c}" for c in classes), "Seg_Recall", "Seg_Accuracy"], rows)
    b, every = data["budget"], data["every_defect_class_above_zero_largest"]
    page.add(f"Budget: {b['minutes']} min ({b['steps']} steps, {b['elapsed_min']} min measured); "
             f"test split, {data['test_images']} whole images (all-images protocol, defect-free ones included). "
             f"Every defect class above 0 IoU for the largest subnet: **{every}**.", "")  # fmt: skip


def _demo(page: Page) -> None:
    page.add("### The README's main job: every synthetic defect class", "")
    data = page.source("demo")
    if data is None:
        return
    t = data["test"]
    classes = list(t["per_class_iou"])
    rows = []
    for run in [*data.get("earlier", []), data]:
        r, wall = run["test"], "—" if run["wall_s"] is None else f"{run['wall_s'] / 60:.1f}"
        head = " + two-level detail path" if run.get("space_decoder", {}).get("detail_levels", 1) == 2 else ""
        weights = f"fine-tuned {run['finetune_steps']} steps" if run.get("finetune_steps") else "inherited"
        rows.append([f"`{run['supernet']}`{head}", run["budget_steps"], weights, wall, pct(r["miou"]),
                     pct(r["miou_fg"]), *(pct(r["per_class_iou"].get(c)) for c in classes)])  # fmt: skip
    page.table(["supernet", "steps", "exported weights", "wall min", "mIoU", "defect mIoU",
                *(f"IoU {c}" for c in classes)], rows)  # fmt: skip
    how = f"fine-tuned {data['finetune_steps']} steps" if data.get("finetune_steps") else "inherited weights"
    every = data["every_defect_class_above_zero"]
    page.add(f"Exported model on the {data['test_images']} test images, whole 128x128 images (last row: today's "
             f"defaults). Every defect class above 0 IoU: **{every}**.", "")  # fmt: skip
    protocol = f"built-in synthetic data, exported model ({how}), test split"
    budget = f"{data['budget_steps']} supernet steps + {data.get('finetune_steps') or 0} fine-tuning, 2 CPU cores"
    for c in classes[1:]:
        page.record(f"learning.demo_iou_{c}", t["per_class_iou"][c], protocol, budget, data["command"])


# -- formatting -----------------------------------------------------------------------------------
def pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def millions(value) -> str:
    return "—" if value is None else f"{value / 1e6:.2f} M"


def gflops(value) -> str:
    return "—" if value is None else f"{value / 1e9:.2f} G"


def hours(value) -> str:
    return "—" if value is None else (f"{60 * value:.0f} min" if value < 1 else f"{value:.2f} h")


def ms(value) -> str:
    return "—" if value is None else f"{value:.1f} ms"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


# -- sections -------------------------------------------------------------------------------------
def headline(page: Page) -> None:
    page.add("## Headline: searched models vs paper Table II", "")
    neu, mt, cap = _load("pipeline_neu-seg"), _load("pipeline_mt"), _load("retrain_cap")
    rows = []
    if neu:
        for label, row in neu["candidates"].items():
            if label.startswith("searched-"):
                rows.append(_headline_row("NEU-Seg", label.removeprefix("searched-"), row, neu, "neu-seg"))
    if mt and cap:
        search = mt["searches"].get("cpu-x86-2core", {})
        res = cap["results"]["no-cap"]
        row = {"test": res, "params": search.get("params"), "flops": search.get("flops"),
               "predicted_latency": {"cpu-x86-2core": {"ms": search.get("latency_ms")}},
               "train_hours": res["train_hours"]}  # fmt: skip
        rows.append(_headline_row("Magnetic Tile", "cpu-x86-2core", row, mt, "mt", retrain_epochs=res["epochs"]))
    if not rows:
        page.add("_The real-data pipelines have not run yet (see below)._", "")
        return
    page.table(["dataset", "searched for", "mIoU", "mF1", "Sample_mIoU", "Seg_Recall", "params", "FLOPs",
                "predicted latency", "budget (2-core CPU)", "paper mIoU / mF1"], rows)  # fmt: skip
    page.add(
        "mIoU and mF1 are over all classes incl. background on the test split (NEU-Seg: the official 840 "
        "images; MT: our recorded 15% split). The paper's figures are at its own budget (last column).",
        "",
    )


def _headline_row(dataset: str, device: str, row: dict, run: dict, key: str, retrain_epochs=None) -> list:
    t = row["test"]
    paper = PAPER_II[key]
    supernet = run["supernet"]
    budget = (f"{run['input_size'][0]}², supernet {supernet['epochs']} ep ({hours(supernet['hours'])}), "
              f"retrain {retrain_epochs or run['retrain_epochs']} ep ({hours(row['train_hours'])})")  # fmt: skip
    lat = row["predicted_latency"].get(device, {}).get("ms")
    return [dataset, device, pct(t["miou"]), pct(t["mf1"]), pct(t.get("sample_miou")), pct(t.get("seg_recall")),
            millions(row["params"]), gflops(row["flops"]), f"{ms(lat)} ({device})", budget,
            f"{paper[0]} / {paper[1]} ({paper[2]})"]  # fmt: skip


def neu_pipeline(page: Page) -> None:
    page.add("## NEU-Seg: supernet, search on two devices, retraining against baselines", "")
    data = page.source("pipeline_neu-seg")
    if data is None:
        return
    _pipeline_budget(page, data)
    rows = []
    for label, row in data["candidates"].items():
        t, lat = row["test"], row["predicted_latency"]
        name = CANDIDATE_NAMES.get(label, label.replace("searched-", "searched for "))
        rows.append([name, pct(t["miou"]), pct(t["mf1"]), pct(t["miou_fg"]), pct(t["sample_miou"]),
                     millions(row["params"]), gflops(row["flops"]),
                     " / ".join(ms(lat.get(d, {}).get("ms")) for d in data["searches"]) if lat else "not in space",
                     ms(row.get("measured_ms_here")), hours(row["train_hours"]), row["init"]])  # fmt: skip
    devices = " / ".join(data["searches"])
    page.add(
        f"All candidates retrained {data['retrain_epochs']} epoch(s) with the recipe's `retrain` settings "
        f"({data['recipe']}, {data['input_size'][0]}x{data['input_size'][1]}), without CaP; test split.",
        "",
    )
    page.table(["model", "mIoU", "mF1", "mIoU defects", "Sample_mIoU", "params", "FLOPs",
                f"predicted ({devices})", "measured here (1 thread)", "retrain time", "init"], rows)  # fmt: skip
    _compare(page, data)
    _curves(page, data, "neu")
    _search_pictures(page, data, "neu")
    _overlays(page, data, "neu")


def mt_pipeline(page: Page) -> None:
    page.add("## Magnetic Tile: supernet and search on two devices", "")
    data = page.source("pipeline_mt")
    if data is None:
        return
    _pipeline_budget(page, data)
    page.add(
        "The MT supernet at this budget predicts only background for every subnet (validation mIoU 19.7 = "
        "background IoU / 6 classes), so both searches rank candidates by latency alone. Retraining the "
        "cpu-searched arch for 30 epochs does segment blowholes: see *CaP on/off* below.",
        "",
    )
    _search_pictures(page, data, "mt")


def _pipeline_budget(page: Page, data: dict) -> None:
    s = data["supernet"]
    rows = [["supernet", f"{s['epochs']} epochs ({s['steps']} steps)", hours(s["hours"]), s.get("device")]]
    for device, search in data["searches"].items():
        cfg = search["search"]
        minutes = "—" if search["minutes"] is None else f"{search['minutes']:.0f} min"
        rows.append([f"search for {device} ({search['hw']['provenance']} table)",
                     f"population {cfg['population']} x {cfg['generations']} generations, {search['candidates']} "
                     f"candidates", minutes, data["machine"]])  # fmt: skip
    page.table(["stage", "size", "time", "device"], rows)
    page.add(
        "Times are wall-clock on the shared 2-core machine, mostly with other benchmarks running beside them: "
        "upper bounds of what the same run takes alone.",
        "",
    )


def _compare(page: Page, data: dict) -> None:
    """What the table says, computed: searched vs the best baseline, and measured vs predicted latency."""
    rows = data["candidates"]
    searched = {k: r for k, r in rows.items() if k.startswith("searched-")}
    others = {k: r for k, r in rows.items() if k not in searched}
    if searched and others:
        best = max(others, key=lambda k: rows[k]["test"]["miou"])
        for label, r in searched.items():
            gap = 100 * (r["test"]["miou"] - rows[best]["test"]["miou"])
            page.add(f"The arch {label.replace('searched-', 'searched for ')} is {gap:+.1f} mIoU points from the "
                     f"best baseline ({CANDIDATE_NAMES.get(best, best)}) at this retraining budget.", "")  # fmt: skip
    picked = [(device, search["best_val"], searched.get(f"searched-{device}")) for device, search in
              data["searches"].items() if search.get("best_val") is not None]  # fmt: skip
    best_val = {device: max((h["val"]["miou"] for h in row["history"] if "val" in h), default=None)
                for device, _, row in picked if row}  # fmt: skip
    pairs = [f"{device} {pct(inherited)} -> {pct(best_val[device])}" for device, inherited, _ in picked
             if best_val.get(device) is not None]  # fmt: skip
    if pairs:
        page.add(f"Validation mIoU of each searched arch with the inherited weights its search ranked it by, then "
                 f"after retraining (best epoch): {', '.join(pairs)}. How well the first predicts the second at "
                 "this budget is measured in the Kendall tau section below.", "")  # fmt: skip
    first = next(iter(data["searches"]), None)
    timed = [r for r in rows.values() if r.get("measured_ms_here") and first in r["predicted_latency"]]
    if len(timed) > 1:
        from autonad.latency.measure import summary

        measured = [r["measured_ms_here"] for r in timed]
        predicted = [r["predicted_latency"][first]["ms"] for r in timed]
        ratios = [m / p for m, p in zip(measured, predicted)]
        page.add(f"Measured here / predicted on {first}: median {statistics.median(ratios):.2f} "
                 f"(range {min(ratios):.2f}-{max(ratios):.2f}); Kendall tau between the two orderings of these "
                 f"{len(timed)} models {summary(predicted, measured)['kendall_tau']:.2f}. The table converts its "
                 "timings with a probe workload timed when it was profiled, the measurement here is raw wall-clock "
                 "of this run, so the level differs with the machine's speed; the spread of the ratio is the "
                 "prediction error plus this machine's 10-15% timing noise. Retraining times are wall-clock with "
                 "other runs beside them and differing thread counts.", "")  # fmt: skip


def _curves(page: Page, data: dict, prefix: str) -> None:
    plt, path = page.figure(f"{prefix}_curves.png")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    hist = data["supernet"]["history"]
    left.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], marker="o")
    left.set(xlabel="epoch", ylabel="train loss", title="supernet training")
    curves = {label: [(h["epoch"], 100 * h["val"]["miou"]) for h in row["history"] if "val" in h]
              for label, row in data["candidates"].items()}  # fmt: skip
    if all(len(points) <= 1 for points in curves.values()):  # one epoch each: a curve would be a dot
        labels = [label for label, points in curves.items() if points]
        bars = right.barh(labels, [curves[label][0][1] for label in labels])
        right.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
        right.invert_yaxis()
        right.set(xlabel="val mIoU (%)", title="retraining, 1 epoch each (same budget)")
        caption = "Left: supernet training loss per epoch. Right: validation mIoU of every retrained model."
    else:
        for label, points in filter(lambda item: item[1], curves.items()):
            right.plot(*zip(*points), marker="o", label=label)
        right.set(xlabel="epoch", ylabel="val mIoU (%)", title="retraining (same budget)")
        right.legend(fontsize=7)
        caption = "Left: supernet training loss per epoch. Right: validation mIoU of every retrained model per epoch."
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    page.picture(path.name, caption)


def _search_pictures(page: Page, data: dict, prefix: str) -> None:
    for device, search in data["searches"].items():
        page.copy_image(
            search["pareto_png"],
            f"{prefix}_pareto_{device}.png",
            f"Every candidate of the search for {device}: fitness vs predicted latency, Pareto front.",
        )
        page.copy_image(
            search["prior_png"],
            f"{prefix}_prior_{device}.png",
            f"Latency prior for {device} (paper Fig. 5): P(operator) per block position.",
        )


def _overlays(page: Page, data: dict, prefix: str) -> None:
    from PIL import Image

    files = [ROOT / f for f in data.get("overlays", []) if (ROOT / f).exists()]
    name, count = f"{prefix}_overlays.png", len(files) or len(data.get("overlays", []))
    if files:
        tiles = [Image.open(f).convert("RGB").resize((200, 200)) for f in files]
        strip = Image.new("RGB", (200 * len(tiles) + 8 * (len(tiles) - 1), 200), "white")
        for i, tile in enumerate(tiles):
            strip.paste(tile, (208 * i, 0))
        page.img.mkdir(parents=True, exist_ok=True)
        strip.save(page.img / name)
    if (page.img / name).exists():  # made now, or earlier from run folders this machine lacks
        page.picture(name, f"`autonad predict` overlays of {count} test images by the model searched for the "
                     "first device (ONNX), spread over the test split.")  # fmt: skip


def ablations(page: Page) -> None:
    page.add("## Ablations (paper Tables V, VI, VII)", "")
    data = page.source("ablations")
    if data is None:
        return
    v = data["variants"]
    page.add(
        f"Each variant: its own supernet trained with recipe `{data['recipe']}` (the `{data['base_space']}` "
        "space at 96x96; budget per row), an accuracy-only evolution search, the best subnet scored with "
        "inherited weights and after retraining it alone; test split of NEU-Seg. One seed per variant: "
        "differences of a point or two are within run-to-run noise at this budget.",
        "",
    )
    page.add("### Search space (Table V)", "")
    rows = []
    for name, paper in PAPER_V.items():
        r = v.get(f"space-{name}")
        if r:
            rows.append([name, pct(r["inherited"]["miou"]), pct(r["retrained"]["miou"]), pct(r["retrained"]["mf1"]),
                         hours(r["supernet_hours"]), f"{paper[0]} / {paper[1]}"])  # fmt: skip
    page.table(["block operators", "mIoU inherited", "mIoU retrained", "mF1 retrained", "supernet time",
                "paper (MT) mIoU / mF1"], rows)  # fmt: skip
    _spread(page, {n: v[f"space-{n}"] for n in PAPER_V if f"space-{n}" in v}, "search space")
    page.add("### Decoder: searched MFAM vs fixed UPerNet (Table VI)", "")
    full, upernet = v.get(f"space-{FULL}"), v.get("decoder-upernet")
    if full and upernet:
        rows = [[name, pct(r["retrained"]["miou"]), pct(r["retrained"]["mf1"]), " / ".join(map(str, paper))]
                for (name, paper), r in zip(PAPER_VI_NEU.items(), (upernet, full))]  # fmt: skip
        page.table(["decoder", "mIoU retrained", "mF1 retrained", "paper (NEU) mIoU / mF1"], rows)
    neu = _load("pipeline_neu-seg")
    if neu and "upernet" in neu["candidates"]:
        first = next(k for k in neu["candidates"] if k.startswith("searched-"))
        a, b = neu["candidates"][first]["test"], neu["candidates"]["upernet"]["test"]
        page.add(
            f"At the NEU pipeline's scale (Table I space, 128², {neu['retrain_epochs']} retraining epoch(s)): "
            f"MFAM {pct(a['miou'])} vs UPerNet {pct(b['miou'])} mIoU (table above).",
            "",
        )
    page.add("### Weight-sharing mode (Table VII)", "")
    modes = _sharing_variants(v)
    rows = [[mode, pct(r["inherited"]["miou"]), pct(r["retrained"]["miou"]), hours(r["supernet_hours"]),
             f"{PAPER_VII[mode][0]} / {PAPER_VII[mode][1]}"] for mode, r in modes.items()]  # fmt: skip
    page.table(["weight sharing", "mIoU inherited", "mIoU retrained", "supernet time", "paper (NEU) inherited / "
                "retrained"], rows)  # fmt: skip
    _spread(page, modes, "weight-sharing mode")
    _sharing_curves(page, modes)


def _sharing_variants(variants: dict) -> dict[str, dict]:
    """Weight-sharing mode -> its finished ablation variant (cross sharing is the full-space variant)."""
    runs = {mode: variants.get(f"space-{FULL}" if mode == "cross" else f"sharing-{mode}") for mode in PAPER_VII}
    return {mode: r for mode, r in runs.items() if r}


def _spread(page: Page, rows: dict[str, dict], what: str) -> None:
    """One sentence: which variant leads on inherited and on retrained mIoU, and by how much."""
    if len(rows) < 2:
        return
    parts = []
    for key in ("inherited", "retrained"):
        ranked = sorted(rows, key=lambda n: rows[n][key]["miou"], reverse=True)
        best, low = rows[ranked[0]][key]["miou"], rows[ranked[-1]][key]["miou"]
        parts.append(f"{key}: **{ranked[0]}** leads ({pct(best)}; spread {100 * (best - low):.1f} points)")
    page.add(f"By {what}, {'; '.join(parts)}.", "")


def _sharing_curves(page: Page, runs: dict[str, dict]) -> None:
    if not runs:
        return
    plt, path = page.figure("ablation_sharing_loss.png")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for mode, r in runs.items():
        hist = r["supernet_history"]
        ax.plot([h["epoch"] for h in hist], [h["seg"] for h in hist], marker="o", label=mode)
    ax.set(xlabel="epoch", ylabel="train segmentation loss", title="supernet training by sharing mode")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    page.picture(path.name, "Supernet training loss per weight-sharing mode (paper Fig. 6, left).")


def cap_on_off(page: Page) -> None:
    page.add("## CaP on/off (paper 000 Table 2)", "")
    data = page.source("retrain_cap")
    if data is None:
        return
    rows = []
    for label, r in data["results"].items():
        rows.append([label, pct(r["miou"]), pct(r["mf1"]), pct(r["sample_miou"]), pct(r["seg_accuracy"]),
                     pct(r["seg_recall"]), pct(r["seg_precision"]), pct(r.get("cap_accuracy")),
                     pct(r.get("cap_recall")), f"{r['epochs']} ep, {hours(r['train_hours'])}"])  # fmt: skip
    page.add(
        f"Arch `{data['arch']}` (searched on {data['dataset']} for cpu-x86-2core) retrained twice from the "
        f"supernet, same recipe and seed; test split ({data['results']['cap']['images']} images).",
        "",
    )
    page.table(["run", "mIoU", "mF1", "Sample_mIoU", "Seg_Acc", "Seg_Recall", "Seg_Prec", "CaP acc", "CaP recall",
                "budget (1 thread)"], rows)  # fmt: skip
    page.add(
        "At this budget the CaP head collapsed to the class prior (recall 0), so CaP did not help on MT, "
        "unlike paper 000's KSDD2 result.",
        "",
    )


def decisions(page: Page) -> None:
    page.add("## Pass/fail decisions: CaP-gated vs segmentation only (issue 20)", "")
    data = page.source("decisions")
    if data is None:
        return
    seeds, summary = data["seeds"], data["summary"]
    partial = f" **Partial: {len(seeds)} of {len(data['seeds_planned'])} seeds.**" if data.get("partial") else ""
    run = next(iter(seeds.values()), {})
    budget = f"{data['steps']} retraining steps per seed from scratch ({data['recipe']} retrain settings)"
    page.add(f"{data['dataset']}, {data['protocol']}: one arch (the middle of `{data['supernet']}`'s space) with a "
             f"two-stage CaP head retrained per seed; both rules calibrated on validation for `{data['target']}` "
             f"({run.get('val_images')} images), figures on test ({run.get('test_images')} images), mean ± sd over "
             f"seeds. Budget: {budget}.{partial}", "")  # fmt: skip

    def ms(stat):
        return "—" if not stat else f"{100 * stat['mean']:.1f} ± {100 * stat['sd']:.1f}"

    rows = []
    for rule, label in (("seg", "segmentation only (phi >= tau)"), ("gated", "CaP-gated segmentation")):
        for suffix, how in (("", "one tau"), ("_per_class", "per-class taus")):
            v = rule + suffix
            rows.append([f"{label}, {how}", ms(summary[f"{v}_recall"]), ms(summary[f"{v}_precision"]),
                         ms(summary[f"{v}_accuracy"])])  # fmt: skip
    page.table(["decision", "Seg_Recall", "Seg_Precision", "Seg_Accuracy"], rows)
    classes = list(summary["seg_class_recall_segmentation"])
    sources = (("segmentation, one tau (a predicted pixel of the class)", "seg_class_{}_segmentation"),
               ("segmentation, per-class taus (max p_c >= tau_c)", "seg_per_class_class_{}_segmentation"),
               ("CaP class stage (p_c >= 0.5)", "seg_class_{}_cap"),
               ("CaP class stage, per-class thresholds", "seg_per_class_class_{}_cap"))  # fmt: skip
    for rate in ("recall", "precision"):
        page.table(
            [f"per-class sample {rate} (test)", *classes],
            [[what, *(ms(summary.get(key.format(rate), {}).get(c)) for c in classes)] for what, key in sources],
        )
    page.table(["pixel IoU (test)", "mIoU", *classes], [
        [what, ms(summary[m]), *(ms(summary[key].get(c)) for c in classes)] for what, m, key in (
            ("argmax", "miou", "per_class_iou"),
            ("per-class pixel thresholds (fitted on val)", "miou_pixel_thresholds", "per_class_iou_pixel_thresholds"))
    ])  # fmt: skip
    page.table(["seed", "outputs", "mIoU", "train min", "seg: tau", "gated: tau, CaP threshold"], [
        [seed, r["outputs"], pct(r["miou"]), f"{r['train_s'] / 60:.0f}" if r.get("train_s") else "—",
         f"{r['seg']['tau']:.3f}", f"{r['gated']['tau']:.3f}, {r['gated']['cap_threshold']:.3f}"]
        for seed, r in seeds.items()])  # fmt: skip
    gated, seg = summary["gated_precision"], summary["seg_precision"]
    if gated and seg:
        verdict = "buys" if gated["mean"] > seg["mean"] + gated["sd"] + seg["sd"] else "does not buy"
        page.add(f"At this budget CaP gating {verdict} precision at the calibrated recall ({100 * gated['mean']:.1f} "
                 f"vs {100 * seg['mean']:.1f}). A per-class recall of 100 with the other classes at 0 is a stage "
                 "that calls every defective sample that class, not one that tells classes apart.", "")  # fmt: skip
    command = data["command"]
    for key, rule in (("decisions.gated_precision", "gated"), ("decisions.segonly_precision", "seg")):
        stat = summary[f"{rule}_precision"]
        if stat:
            page.record(key, round(stat["mean"], 4), f"{data['dataset']} all images, test, {data['target']} on val, "
                        f"{stat['n']} seeds (sd {stat['sd']:.3f})", budget, command)  # fmt: skip


def ensembles(page: Page) -> None:
    page.add("## Ensembles of searched subnets vs the best single one (issue 20)", "")
    labels = {"single": "best single searched subnet", "equal_latency": "3-member ensemble, equal total latency",
              "free_latency": "3-member ensemble, free latency"}  # fmt: skip
    recorded = False
    for slug in ("neu-seg", "mt"):
        data = page.source(f"ensembles_{slug}")
        if data is None:
            continue
        seeds, summary = data["seeds"], data["summary"]
        partial = (f" **Partial: stage {data['stage']}, {len(seeds)} of {len(data['seeds_planned'])} seeds.**"
                   if data.get("partial") else "")  # fmt: skip
        size = "x".join(map(str, data["input_size"]))
        trained = f"trained {data['supernet_steps']} steps, " if data.get("supernet_steps") else ""
        budget = f"{data['steps']} retraining steps per model from the supernet ({trained}{data['recipe']}, {size})"
        page.add(f"{data['dataset']}: the search for `{data['hw']}` picks the single best arch and {data['k']} "
                 "diverse members (other operator/width families, its Pareto front first); each retrained per seed, "
                 "the ensemble's weights tuned on validation; test figures, mean ± sd over seeds, latency predicted "
                 f"on the search's table (an ensemble: its members' sum). Budget: {budget}.{partial}", "")  # fmt: skip

        def ms(stat, scale=100.0):
            return "—" if not stat else f"{scale * stat['mean']:.1f} ± {scale * stat['sd']:.1f}"

        rows = []
        for variant, label in labels.items():
            stat = summary.get(variant, {})
            if stat.get("infeasible"):
                rows.append([label, f"not built: {stat['infeasible']}", "", "", "", ""])
                continue
            rows.append([label, ms(stat.get("miou")), ms(stat.get("tail_iou")), ms(stat.get("seg_recall")),
                         ms(stat.get("seg_precision")), ms(stat.get("latency_ms"), 1.0)])  # fmt: skip
        page.table(["model", "mIoU", "tail-class IoU", "Seg_Recall", "Seg_Precision", "predicted ms"], rows)
        single, equal = summary.get("single", {}).get("miou"), summary.get("equal_latency", {}).get("miou")
        if single and equal and not recorded:
            recorded = True  # the headline keys hold the first dataset measured
            where = f"{data['dataset']} test, equal total predicted latency, {single['n']} seeds"
            page.record("decisions.ensemble_miou", round(equal["mean"], 4), where, budget, data["command"])
            page.record("decisions.single_miou", round(single["mean"], 4), where, budget, data["command"])


def ranking(page: Page) -> None:
    page.add("## Inherited vs retrained ranking (Kendall tau)", "")
    for name, what in (("inherited_vs_retrained", "the demo supernet (tiny space, synthetic data, 128²)"),
                       ("inherited_vs_retrained_neu", "the NEU-Seg ablation supernet (tiny space, cross sharing, "
                                                      "96²)")):  # fmt: skip
        data = page.source(name)
        if data is None:
            continue
        page.add(f"{data['subnets']} random subnets of {what}, scored by validation {data['metric']} with inherited "
                 f"weights and after {data['retrain_epochs']} retraining epoch(s) each: **Kendall tau "
                 f"{data['kendall_tau']:.3f}** (p = {data['p_value']:.3f}).", "")  # fmt: skip
        page.add(_ranking_verdict(data), "")
        plt, path = page.figure(f"ranking_{name}.png")
        fig, ax = plt.subplots(figsize=(4.5, 3.6))
        ax.scatter([100 * r["inherited"] for r in data["rows"]], [100 * r["retrained"] for r in data["rows"]])
        ax.set(xlabel=f"inherited {data['metric']} (%)", ylabel=f"retrained {data['metric']} (%)",
               title=f"{data['dataset']}: Kendall tau {data['kendall_tau']:.2f}")  # fmt: skip
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        page.picture(path.name, "Each point one subnet: its inherited-weight score vs its score after retraining.")


def _ranking_verdict(data: dict) -> str:
    """Spreads of both scores and whether the rank agreement is significant at 5%."""
    inherited = [100 * r["inherited"] for r in data["rows"]]
    retrained = [100 * r["retrained"] for r in data["rows"]]
    spreads = (f"Inherited scores span {max(inherited) - min(inherited):.1f} points, retrained "
               f"{max(retrained) - min(retrained):.1f}.")  # fmt: skip
    if data["p_value"] < 0.05:
        return f"{spreads} The inherited weights rank these subnets like retraining does (p < 0.05)."
    return (
        f"{spreads} No significant rank agreement (p >= 0.05): at this supernet and retraining budget the "
        "inherited score does not predict which subnet retrains best."
    )


def latency(page: Page) -> None:
    page.add("## Latency model (SPEC section 9)", "")
    for name in ("latency_predictor", "latency_predictor_autonad", "latency_predictor_fine", "latency_predictor_ort"):
        page.add(f"### {LATENCY_RUNS[name]}", "")
        data = page.source(name)
        if data is None:
            continue
        rows = [[k.replace("_", " "), data[k]["n"], pct(data[k]["within_10pct"]), f"{data[k]['kendall_tau']:.3f}",
                 pct(data[k]["mape"])] for k in ("predicted_vs_measured", "remeasured_vs_measured",
                                                   "predicted_vs_remeasured") if k in data]  # fmt: skip
        page.add(f"{data['device']} table, profile {data['profile']}, on {data['hardware']}.", "")
        page.table(["comparison", "subnets", "within ±10% (%)", "Kendall tau", "MAPE (%)"], rows)
        _latency_headline(page, name, data)
        if "vs_torch" in data:
            page.add(f"Per operator type, the {data['runtime']} entries against the eager ones of the same table "
                     "(components timed alone; ratio < 1: faster on ONNX Runtime):", "")  # fmt: skip
            rows = [
                [
                    kind,
                    r["components"],
                    f"{r['median_ratio']:.2f}",
                    f"{r['min_ratio']:.2f}-{r['max_ratio']:.2f}",
                    f"{r['eager_ms_sum']:.1f}",
                    f"{r['other_ms_sum']:.1f}",
                ]
                for kind, r in data["vs_torch"].items()
            ]
            page.table(["operator type", "components", "median ratio", "range", "eager ms (sum)",
                        f"{data['runtime']} ms (sum)"], rows)  # fmt: skip
    page.add(
        "*remeasured vs measured* is the machine's noise ceiling: no predictor can agree with a measurement "
        "better than the measurement agrees with itself.",
        "",
    )
    _latency_estimate(page)
    _prior_records(page)


def _prior_records(page: Page) -> None:
    page.add("### The latency prior fitted to training records (paper IV-D) vs the measured table's", "")
    data = page.source("prior_records")
    if data is None:
        return
    h, w = data["record_input"]
    page.add(f"{data['records']} latency records of the sampled subnet, timed by the supernet trainer on "
             f"{data['timed_on']} at {h}x{w} (batch 1), fitted per block position and MFAM edge; beside them the "
             f"costs of the measured table {data['table']}.", "")  # fmt: skip
    rows = [[r["gene"], min(r["records_ms"], key=r["records_ms"].get), min(r["table_ms"], key=r["table_ms"].get),
             f"{r['kendall_tau']:.2f}"] for r in data["genes"]]  # fmt: skip
    page.table(["gene", "cheapest (records)", "cheapest (table)", "Kendall tau of the cost orders"], rows)
    page.add(f"Mean Kendall tau: block positions **{data['block_mean_tau']:.2f}**, MFAM edges "
             f"**{data['edge_mean_tau']:.2f}**; the same cheapest op at {pct(data['same_cheapest'])}% of the genes.",
             "")  # fmt: skip
    for label in ("records", "table"):
        page.copy_image(data["images"][label], f"prior_{label}.png", f"latency prior from the {label}")


def _latency_estimate(page: Page) -> None:
    page.add("### The calibrated estimate against published and measured timings", "")
    data = page.source("latency_estimate")
    if data is None:
        return
    h, w = data["published_input"]
    for hw, r in data["published"].items():
        f = r["fitted"]
        fraction = min(f["efficiency"].values())
        page.add(f"**{hw}**: fitted on {'; '.join(f['calibrated_on'])}: achieved fraction {fraction:.3g} of the "
                 f"roofline, {f['launch_us']:.1f} us per kernel.", "")  # fmt: skip
        rows = [
            [
                x["name"],
                "reference (fitted)",
                "",
                x["kernels"],
                ms(x["roofline_ms"]),
                ms(x["estimate_ms"]),
                ms(x["published_ms"]),
                f"{x['estimate_ms'] / x['published_ms']:.2f}",
            ]
            for x in r["references"]
        ]
        rows += [[f"`{a['arch'][:8]}`", "held out", f"{a['params_m']:.2f} M", a["kernels"], ms(a["roofline_ms"]),
                  ms(a["estimate_ms"]), f"{ms(r['autonad_published_ms'])} (AutoNAD, 5.9 M)", f"{a['ratio']:.2f}"]
                 for a in r["archs"]]  # fmt: skip
        page.table(["network", "role", "params", "kernels", "roofline ms", "estimate ms", "published ms",
                    "estimate / published"], rows)  # fmt: skip
        key = {"rtx3090": "3090", "jetson-xavier-nx": "jetson"}[hw]
        bounds = ", ".join(f"{x['name']} {1e3 * x['published_ms'] / x['kernels']:.0f} us" for x in r["references"])
        page.add(f"Median over the {len(r['archs'])} paper-sized archs: **{r['median_ratio']:.2f}x** the published "
                 f"figure (the uncalibrated roofline: {r['median_roofline_ratio']:.2f}x). Published ms per kernel "
                 f"(an upper bound on the per-kernel cost): {bounds}; AutoNAD's row allows "
                 f"{1e3 * r['autonad_published_ms'] / statistics.median(a['kernels'] for a in r['archs']):.0f} us at "
                 "the archs' median kernel count.", "")  # fmt: skip
        page.record(f"latency.table8_ratio_{key}", r["median_ratio"],
                    f"predicted / published ({r['source']}: AutoNAD {r['autonad_published_ms']} ms) for "
                    f"{len(r['archs'])} random autonad archs of 5.5-6.5 M parameters at {h}x{w} (the table states "
                    "no input size); the estimate fitted on the table's DeepLabv3+ and SegFormer rows",
                    "shapes only (meta device), no GPU run", data["command"])  # fmt: skip
    c = data.get("cpu")
    if c is None:
        page.add("_Partial: the CPU part has not run yet._", "")
        return
    f, n_fit = c["fitted"], len(c["archs"]) - c["held_out"]["n"]
    page.add(f"**This CPU** ({c['search_space']} at {c['input_size'][0]}x{c['input_size'][1]}, {c['threads']} "
             f"thread): fitted on {n_fit} subnets timed here, {f['launch_us']:.1f} us per kernel, achieved fraction "
             + ", ".join(f"{k} {v:.3g}" for k, v in f["efficiency"].items()) + ".", "")  # fmt: skip
    rows = [[label, c[k]["n"], pct(c[k]["within_10pct"]), f"{c[k]['kendall_tau']:.3f}", pct(c[k]["mape"])]
            for label, k in (("estimate, fit set", "fit_set"), ("estimate, held out", "held_out"),
                             ("uncalibrated roofline, held out", "roofline_held_out"))]  # fmt: skip
    page.table(["comparison", "subnets", "within ±10% (%)", "Kendall tau", "MAPE (%)"], rows)
    page.record("latency.estimate_tau_cpu", c["held_out"]["kendall_tau"],
                f"Kendall tau of the estimate (fitted on {n_fit} subnets' end-to-end timings) against the timings "
                f"of {c['held_out']['n']} other random {c['search_space']} subnets, eager PyTorch, 1 thread",
                "one round-robin timing pass of 140 subnets, 2-core CPU", data["command"])  # fmt: skip


LATENCY_RUNS = {
    "latency_predictor": "Tiny space, eager PyTorch",
    "latency_predictor_autonad": "Paper Table I space, eager PyTorch",
    "latency_predictor_fine": "Thin-defect space (autonad-fine), eager PyTorch",
    "latency_predictor_ort": "Thin-defect space (autonad-fine), ONNX Runtime (how model.onnx runs)",
}
HEADLINE_WITHIN10 = {
    "latency_predictor_fine": "latency.within10_eager_cpu",
    "latency_predictor_ort": "latency.within10_ort_cpu",
}


def _latency_headline(page: Page, name: str, data: dict) -> None:
    key = HEADLINE_WITHIN10.get(name)
    if key and "predicted_vs_measured" in data:
        s = data["predicted_vs_measured"]
        page.record(key, s["within_10pct"], f"{data['device']} table ({data['profile']}, {data['hardware']}): share of "
                    f"{s['n']} random subnets predicted within +-10% of their end-to-end timing on "
                    f"{data.get('runtime', 'torch')}", "one pass of 100 subnets, 1 thread, 2-core CPU",
                    data.get("command", ""))  # fmt: skip


def search(page: Page) -> None:
    page.add("## Search (SPEC section 9)", "")
    data = page.source("search_throughput")
    if data:
        page.table(["Ray workers", "seconds", "candidates / min"],
                   [[1, data["workers_1"]["seconds"], data["workers_1"]["per_minute"]],
                    [2, data["workers_2"]["seconds"], data["workers_2"]["per_minute"]]])  # fmt: skip
        page.add(
            f"Speed-up of 2 workers over 1: **{data['speedup']:.2f}x** ({data['candidates']} candidates, "
            f"{data['val_images']} validation images each, demo supernet).",
            "",
        )
    _device_decides(page, "device_decides", "The target device decides (device issue)")
    _device_decides(
        page, "device_decides_runtime", "... and so does the runtime: eager PyTorch vs ONNX Runtime on this CPU"
    )
    data = page.source("search_vs_random")
    if data:
        page.add(
            f"Evolution vs random search at equal evaluations ({data['score']}): mean best score "
            f"**{data['evolution_mean']:.4f} vs {data['random_mean']:.4f}**; evolution wins "
            f"{data['evolution_wins']} of {len(data['runs'])} seeds.",
            "",
        )


def _device_decides(page: Page, name: str, title: str) -> None:
    page.add(f"### {title}", "")
    data = page.source(name)
    if not data or "by_device" not in data:
        return
    rows = []
    for hw, row in data["by_device"].items():
        s = data["searches"][hw]
        rows.append([hw, row["table"], f"`{row['pick'][:8]}`", ms(row["own_pick_ms"]), ms(row["other_pick_ms"]),
                     f"**{row['speedup']:.2f}x**", pct(row["fitness"]), f"{row['fitness_points_given_up']:+.2f}",
                     "yes" if row["met"] else "no", s["evaluated"]])  # fmt: skip
        key = {"cpu-x86-2core": "cpu", "jetson-xavier-nx": "jetson"}.get(hw) if name == "device_decides" else None
        if key:
            page.record(f"latency.own_device_speedup_{key}", row["speedup"],
                        f"{data['dataset']}: the other device's default pick over this one, ms on the {row['table']} "
                        f"table; this pick gives up {row['fitness_points_given_up']:+.2f} fitness points "
                        "(validation mIoU, inherited weights)", "one supernet, two default searches (2-core CPU)",
                        data["command"])  # fmt: skip
    page.table(["device", "table", "pick", "own pick ms", "other pick ms", "speed-up", "fitness", "points given up",
                ">= 1.15x at <= 1 point", "evaluated"], rows)  # fmt: skip
    differ = "different archs" if data["different_archs"] else "**the same arch**"
    page.add(
        f"`autonad search` with its defaults (no latency weight: NSGA-II front, the fastest arch within 1 mIoU point "
        f"of the best) on one supernet for two devices returns {differ}; each pick is timed on both tables and "
        f"evaluated again on the same {data['val_images']} validation images at {data['input_size'][0]}x"
        f"{data['input_size'][1]}. *Points given up*: the other pick's fitness minus this pick's (x100).",
        "",
    )
    for hw, s in data["searches"].items():
        page.add(f"- {hw}: {s['why']}")
    page.add("")
    if "without_refinement" in data:
        told = "; ".join(f"{hw} `{r['pick'][:8]}` {r['speedup']:.2f}x at {r['fitness_points_given_up']:+.2f} points"
                         for hw, r in data["without_refinement"]["by_device"].items())  # fmt: skip
        page.add(f"Without the refinement generation (each search's pick among its evolution's candidates alone, "
                 f"what `--refine 0` returns): {told}.", "")  # fmt: skip
    for run in data.get("earlier", []):
        rows = run["by_device"]
        told = "; ".join(
            f"{hw} {r['speedup']:.2f}x at {r['fitness_points_given_up']:+.2f} points" for hw, r in rows.items()
        )
        page.add(f"Earlier, on another supernet ({run.get('note', run['searches'][next(iter(rows))]['supernet'])}): "
                 f"{told}.", "")  # fmt: skip


def overhead(page: Page) -> None:
    page.add("## Supernet overhead (SPEC section 9)", "")
    data = page.source("supernet_overhead")
    if data is None:
        return
    rows = [[name, f"{a.get('ratio', 0):.3f}"] for name, a in data["archs"].items()]
    page.add(
        f"Train-step time of the supernet set to an arch / of the extracted subnet (batch {data['batch']}, "
        f"{data['input_size'][0]}², {data['threads']} thread):",
        "",
    )
    page.table(["arch", "ratio"], rows)


def export_round_trip(page: Page) -> None:
    page.add("## Export round trip", "")
    data = page.source("export_round_trip")
    if data is None:
        return
    rows = [[fmt, data["max_abs_metric_difference_vs_in_memory"][fmt], data["identical_confusion_matrix"][fmt],
             data["eval_seconds"][fmt]] for fmt in data["metrics"]]  # fmt: skip
    decision = f"defective when {data['decision']['phi']} >= {data['decision']['tau']:.3f}"
    page.add(f"{data['dataset']} {data['split']} split, {data['images']} images, decision: {decision}.", "")
    page.table(["format", "max abs metric difference", "identical confusion", "eval seconds"], rows)


def gpu_check(page: Page) -> None:
    """Every `bench/gpu_check.sh` run committed (bench/results/gpu_<device>.json), one table per device."""
    page.add("## On a GPU (#21)", "")
    side = _load("search_throughput_before_after_21")
    if side is not None:
        page.add(f"Search throughput on 2 CPU cores before and after the GPU/cluster work (#21), 3 interleaved runs "
                 f"each: 2 workers x{side['head_over_base_workers_2']}, 1 worker x{side['head_over_base_workers_1']} "
                 "(JSON: [`bench/results/search_throughput_before_after_21.json`]"
                 "(../bench/results/search_throughput_before_after_21.json)).",
                 f"Command: `{side['command']}`", "")  # fmt: skip
    runs = sorted(p for p in RESULTS.glob("gpu_*.json") if "rehearsal" not in p.stem)
    if not runs:
        page.add(
            "_Not run yet_: no GPU has been available to this work. Command on a CUDA machine: "
            "`bash bench/gpu_check.sh` (`bench/gpu_prepare.sh` prepares the data and wheels it carries).",
            "",
        )
        return
    for path in runs:
        data = json.loads(path.read_text())
        link = f"[`bench/results/{path.name}`](../bench/results/{path.name})"
        page.add(
            f"### {data['device']} (torch {data['torch']})",
            "",
            f"Command: `bash bench/gpu_check.sh` · JSON: {link}",
            "",
        )
        rows = []
        for step, record in data["steps"].items():
            figures = ", ".join(f"{k} {v}" for k, v in record.items() if k not in ("status", "seconds"))
            rows.append([step, record["status"], figures, record.get("seconds", "-")])
        page.table(["step", "status", "figures", "seconds"], rows)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
