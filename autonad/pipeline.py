"""Stage orchestration shared by the CLI and the benchmarks: where runs live, the supernet trained
once and reused, the device's latency predictor, the search run from data to exported model, and
the exports that finish a search. `autonad.cli` only parses arguments and prints; the benchmarks
call this module (or run the `autonad` command), never the CLI's functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonad.config import dump_yaml, write_text_atomic
from autonad.errors import AutoNADError
from autonad.latency.predictor import LatencyPredictor
from autonad.latency.table import canonical_device, load_tables
from autonad.space import Arch, SearchSpace
from autonad.supernet import SupernetConfig
from autonad.train.recipe import Recipe
from autonad.ui import console, pct

EXPORT_FORMATS = ["torchscript", "onnx"]


# -- run folders ----------------------------------------------------------------------------------
def name_slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def dataset_slug(dataset: str) -> str:
    """A folder-name-safe, unique label for a dataset argument."""
    if ":" in dataset:  # voc:/folder: roots: keep it short but unique per path
        root = str(Path(dataset.partition(":")[2]).expanduser().resolve())
        return f"{dataset.partition(':')[0]}-{Path(root).name}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"
    return name_slug(dataset)


def recipe_stem(recipe: str) -> str:
    """A recipe's part of a run folder name: a YAML path's stem, else the label whole (its dots, as in
    '+train-0.05min' or '+scale0.5', are no file suffix: cut there, two budgets would share a folder)."""
    path = Path(recipe)
    return path.stem if path.suffix.lower() in (".yaml", ".yml") else path.name


def supernet_run_dir(dataset: str, supernet: str, recipe: str, base: Path = Path("runs/supernet")) -> Path:
    """Where the supernet for (dataset, supernet definition, recipe) lives, so it is trained once."""
    return base / f"{dataset_slug(dataset)}__{Path(supernet).stem}__{recipe_stem(recipe)}"


def search_run_dir(dataset: str, hw: str, recipe: str, runtime: str = "torch") -> Path:
    """runs/search/<dataset>__<device>[-<runtime>]__<recipe> (eager torch tables add no runtime)."""
    device = name_slug(Path(hw).stem) + ("" if runtime == "torch" else f"-{runtime}")
    return Path("runs/search") / f"{dataset_slug(dataset)}__{device}__{recipe_stem(recipe)}"


def check_output(path: Path, folder: bool = True) -> None:
    """Refuse, before any work, an output folder (or file) that cannot be made: one below a file, or
    in a folder this user cannot write."""
    target = path if folder else path.parent
    existing = next(p for p in [target, *target.parents] if p.exists())
    if not existing.is_dir():
        raise AutoNADError(f"{path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AutoNADError(f"{path}: the folder {existing} is not writable")


# -- stages ---------------------------------------------------------------------------------------
def predictor_for(
    hw: str, space_name: str, size: tuple[int, int] | None, batch: int, classes: int, runtime: str = "torch"
) -> LatencyPredictor:
    """The latency predictor of a device (name, alias or table path) for a space at an input size."""
    space = SearchSpace.load(space_name)
    tables = load_tables(hw)
    prof = tables.select(space.name, size, batch, runtime)
    return LatencyPredictor(tables.device, prof, space, classes)


def ensure_supernet(
    run_dir: Path, recipe: Recipe, sn_config: SupernetConfig, source, tensorboard: bool = True, device: str = "auto"
) -> Path:
    """The supernet checkpoint for (dataset, supernet, recipe): reused when its training finished,
    else trained (or resumed) now."""
    from autonad.train.distributed import init_distributed
    from autonad.train.trainer import SupernetTrainer, finished_supernet

    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        if finished_supernet(checkpoint, recipe, sn_config, source.classes, source.fingerprint()):
            console.print(f"supernet: reusing {checkpoint}")
            return checkpoint
        console.print(f"supernet: resuming {checkpoint}")
    else:
        console.print(f"supernet: training {sn_config.name} on {source.name} with recipe {recipe.name} -> {run_dir}")
    trainer = SupernetTrainer(recipe, sn_config, source, run_dir, init_distributed(device))
    trainer.tensorboard = tensorboard
    trainer.fit(resume=checkpoint.exists())
    return checkpoint


def _export_meta(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("arch", "arch_hash", "input_size", "supernet_config")}


def export_trained(checkpoint: Path, arch: Arch, out: Path, info: dict, formats: list[str]) -> dict[str, Path]:
    """Export `arch` with the weights of a supernet checkpoint; `info` adds metadata (metrics, latency)."""
    from autonad.export import export_subnet
    from autonad.train.trainer import load_trained_supernet

    trained = load_trained_supernet(checkpoint)
    trained.net.space.validate(arch, "arch")
    meta = {**_export_meta(info), "classes": trained.classes, "normalisation": trained.normalisation,
            "recipe": trained.recipe.name, "supernet_checkpoint": str(checkpoint.resolve()),
            **trained.recipe.transform.scale_info()}  # fmt: skip
    return export_subnet(trained.net, arch, out, trained.recipe.input_size, meta, formats)


def export_finetuned(run_dir: Path, out: Path, info: dict, formats: list[str]) -> dict[str, Path]:
    """Export the best epoch (`best.pt`) of a search's fine-tuning run; `info` adds metadata."""
    from autonad.export import export_model
    from autonad.train.subnet import load_trained_subnet

    trained = load_trained_subnet(run_dir / "best.pt")
    meta = {**_export_meta(info), **trained.export_info()}
    meta["metrics"] = meta.pop("val")  # the fine-tuned model's best validation epoch (the search's: inherited_metrics)
    return export_model(trained.net, out, trained.input_size, meta, formats)


def finetune_best(arch, sn_config: SupernetConfig, recipe: Recipe, checkpoint: Path, source, run_dir: Path,
                  resume: bool, tensorboard: bool = True, device: str = "auto"):  # fmt: skip
    """Fine-tune the searched arch from its inherited supernet weights (the recipe's `retrain` settings,
    the search's fine-tuning budget) on the supernet's training split; its best validation epoch wins.
    Returns the trained subnet and the steps it trained."""
    from autonad.train.distributed import init_distributed
    from autonad.train.subnet import RetrainJob, load_trained_subnet

    job = RetrainJob.for_arch(arch, sn_config, recipe.finetune_recipe(), checkpoint)
    split = checkpoint.parent / "split.json"
    if split.is_file():  # the split the supernet trained and the search validated on
        source.use_split(split)
    budget = job.recipe.retrain
    told = f"{budget.minutes:g} min" if budget.minutes is not None else f"{budget.steps} steps"
    console.print(f"fine-tuning the best arch {job.arch.hash[:8]} from its supernet weights for {told} -> {run_dir}")
    trainer = job.trainer(source, run_dir, init_distributed(device))
    trainer.tensorboard = tensorboard
    state = trainer.fit(resume=resume and (run_dir / "checkpoint.pt").exists())
    trained = load_trained_subnet(run_dir / "best.pt")
    val = trained.best["val"]
    console.print(f"fine-tuned {state.global_step} steps: best validation epoch {trained.best['epoch']}, "
                  f"mIoU {pct(val.get('miou'))} (inherited weights: see the table below)")  # fmt: skip
    return trained, state.global_step


def check_constraints_satisfiable(config, predictor, sn_config, num_classes: int, size: tuple[int, int]) -> None:
    """Fail before hours of supernet training if even the space's smallest arch breaks a limit."""
    from autonad.supernet import arch_complexity

    smallest = predictor.space.smallest()
    broken = []
    if config.max_latency_ms is not None and predictor.predict(smallest) > config.max_latency_ms:
        broken.append(
            f"--max-latency-ms {config.max_latency_ms:g} (smallest arch: {predictor.predict(smallest):.2f} ms)"
        )
    if config.max_params is not None or config.max_flops is not None:
        size_of = arch_complexity(sn_config, smallest, size, num_classes)
        if config.max_params is not None and size_of.params > config.max_params:
            broken.append(f"--max-params {config.max_params:g} (smallest arch: {size_of.params:.3g})")
        if config.max_flops is not None and size_of.flops_fvcore > config.max_flops:
            broken.append(f"--max-flops {config.max_flops:g} (smallest arch: {size_of.flops_fvcore:.3g})")
    if broken:
        raise AutoNADError(f"no architecture in search space '{predictor.space.name}' satisfies {'; '.join(broken)}")


# -- the search run -------------------------------------------------------------------------------
@dataclass
class SearchRequest:
    """One `autonad search`: what to search on, for which device, with which settings."""

    dataset: str
    hw: str
    recipe: Recipe  # budgets and fine-tuning settled
    recipe_label: str  # the recipe's part of the run folder names (supernet and search)
    supernet: str  # supernet definition name or path
    config: Any  # `autonad.search.SearchConfig`
    data_root: str | None = None
    skip_bad: bool = False
    out: Path | None = None
    resume: bool = False
    runtime: str = "torch"
    prior_temperature: float = 1.0
    prior: str = "auto"  # PRIOR_SOURCES: the latency prior's costs from the table, the training records, or auto
    ray_address: str | None = None
    device: str = "auto"
    tensorboard: bool = True


@dataclass
class SearchOutcome:
    result: Any  # `autonad.search.SearchResult`
    out: Path
    files: dict[str, Path]
    latency_label: str
    source: Any  # the dataset the search ran on


@dataclass
class _Prepared:
    """Everything a search checks before any work starts."""

    source: Any
    sn_config: SupernetConfig
    predictor: LatencyPredictor
    prior: Any
    identity: dict
    out: Path
    checkpoint: Path
    prior_final: bool  # False: the table's prior until the trained supernet's records decide (`choose_prior`)


def run_search(request: SearchRequest) -> SearchOutcome:
    """Supernet (trained once, reused) -> latency prior -> evolution -> the best subnet exported
    (fine-tuned first where the recipe says so); every check that can fail runs before the work."""
    prep = _prepare_search(request)
    checkpoint = ensure_supernet(prep.checkpoint.parent, request.recipe, prep.sn_config, prep.source,
                                 request.tensorboard, request.device)  # fmt: skip
    if not prep.prior_final:
        prep.prior = _search_prior(request, prep.predictor, checkpoint)
    prep.out.mkdir(parents=True, exist_ok=True)
    prep.prior.heatmap(prep.out / "latency_prior.png")
    result, selection = _evolve(request, prep, checkpoint)
    files = _finish_search(request, prep, checkpoint, result, selection)
    return SearchOutcome(result, prep.out, files, prep.predictor.label, prep.source)


def _prepare_search(request: SearchRequest) -> _Prepared:
    from autonad.data import open_dataset
    from autonad.search.evolution import check_resumable, known_identity

    config, recipe = request.config, request.recipe
    sn_config = SupernetConfig.load(request.supernet)
    source = open_dataset(request.dataset, request.data_root, seed=recipe.train.seed, skip_bad=request.skip_bad)
    predictor = predictor_for(request.hw, sn_config.search_space, recipe.input_size, 1, source.num_classes,
                              request.runtime)  # fmt: skip
    out = request.out or search_run_dir(request.dataset, canonical_device(request.hw), request.recipe_label,
                                        request.runtime)  # fmt: skip
    check_output(out)
    state = out / "search_state.pt"
    if state.exists() and not request.resume:
        raise AutoNADError(f"{out}: holds a search already; pass --resume to continue it or --out for a new one")
    console.print(f"target [bold]{predictor.device}[/]: latency from {predictor.label}")
    if (mismatch := predictor.profile.host_mismatch(predictor.device)) is not None:
        console.print(mismatch)
    check_constraints_satisfiable(config, predictor, sn_config, source.num_classes, recipe.input_size)
    if request.prior == "records" and not recipe.train.latency_every:
        raise AutoNADError(f"--prior records fits the prior to the supernet's training latency records, and recipe "
                           f"'{recipe.name}' takes none (train.latency_every: 0): use --prior table")  # fmt: skip
    checkpoint = supernet_run_dir(request.dataset, request.supernet, request.recipe_label) / "checkpoint.pt"
    # the table's prior now (it checks the temperature); the records' waits for the supernet, checked and
    # trained (a resume has it already)
    prior, final = _search_prior(request, predictor, checkpoint, "table"), request.prior == "table"
    identity = {"hw": predictor.device, "table": predictor.profile.signature, "provenance": predictor.provenance}
    if state.exists():  # a resume on another device or with other settings: refused now
        if not final and checkpoint.exists():
            prior, final = _search_prior(request, predictor, checkpoint), True
        check_resumable(state, known_identity(config, config.selection, predictor.space, prior.gene_weights, identity))
    return _Prepared(source, sn_config, predictor, prior, identity, out, checkpoint, final)


def _search_prior(request: SearchRequest, predictor: LatencyPredictor, checkpoint: Path, source: str | None = None):
    """The search's latency prior from `source` (default: the request's), printed with its source."""
    from autonad.latency.prior import choose_prior

    source = source or request.prior
    records = [] if source == "table" else latency_records(checkpoint)[1]
    prior = choose_prior(source, predictor.profile, predictor.space, records, request.prior_temperature,
                         predictor.label)  # fmt: skip
    if source == request.prior:
        console.print(f"latency prior: {prior.source}")
    return prior


def latency_records(checkpoint: Path) -> tuple[SearchSpace, list[dict]]:
    """A supernet checkpoint's search space and training-time latency records (paper IV-D)."""
    from autonad.train.checkpoint import load_checkpoint
    from autonad.train.trainer import CHECKPOINT_FORMAT

    ckpt = load_checkpoint(checkpoint, CHECKPOINT_FORMAT)
    return SearchSpace.load(ckpt["supernet_config"]["search_space"]), list(ckpt["latency_records"])


def _evolve(request: SearchRequest, prep: _Prepared, checkpoint: Path):
    """The evolution on Ray workers (or in-process); returns the result and the selection rule used."""
    from autonad.data import absolute_reference
    from autonad.search import EvalSettings, EvolutionSearch, make_evaluator
    from autonad.search.evaluate import RayEvaluator, SubnetComplexity

    config, out = request.config, prep.out
    # absolute paths: Ray actors run in other folders (on a cluster, the same paths must hold on every node)
    dataset, root = absolute_reference(request.dataset, prep.source)
    settings = EvalSettings(checkpoint=str(checkpoint.resolve()), dataset=dataset, data_root=root,
                            val_images=config.val_images)  # fmt: skip
    complexity = None
    if config.max_params is not None or config.max_flops is not None:
        complexity = SubnetComplexity.from_config(prep.sn_config, prep.source.num_classes, request.recipe.input_size)
    with make_evaluator(settings, config.workers, request.ray_address, request.device) as evaluator:
        if isinstance(evaluator, RayEvaluator):
            console.print(f"evaluating on {evaluator.plan.describe()}")
        engine = EvolutionSearch(prep.predictor.space, config, evaluator, gene_weights=prep.prior.gene_weights,
                                 latency_fn=prep.predictor.predict, complexity_fn=complexity,
                                 state_path=out / "search_state.pt", identity=prep.identity,
                                 tensorboard_dir=out if request.tensorboard else None)  # fmt: skip
        return engine.run(resume=request.resume), engine.selection


def _finish_search(request: SearchRequest, prep: _Prepared, checkpoint: Path, result, selection: str):
    """Write the search's outputs and export its best arch (fine-tuned first where the recipe says so)."""
    from autonad.search import write_outputs

    config, out, predictor, best = request.config, prep.out, prep.predictor, result.best
    write_outputs(out, result, fitness_label=config.fitness)
    best.arch.save(out / "best_arch.yaml")
    info = {"dataset": prep.source.name, **predictor.metadata(best.latency_ms), "fitness": best.fitness,
            "fitness_spec": config.fitness, "metrics": best.metrics}  # fmt: skip
    summary = {"best": best.to_dict(), "why": result.reason, "search": {**config.to_dict(), "selection": selection},
               "hw": prep.identity, "prior": prep.prior.source, "supernet": str(checkpoint.resolve())}  # fmt: skip
    if request.recipe.search.finetunes:
        run_dir = out / f"finetune-{request.recipe.search.finetune_tag}"
        trained, steps = finetune_best(best.arch, prep.sn_config, request.recipe, checkpoint, prep.source, run_dir,
                                       request.resume, request.tensorboard, request.device)  # fmt: skip
        info.update(
            inherited_metrics=best.metrics, supernet_checkpoint=str(checkpoint.resolve()), finetune_run=run_dir.name
        )
        files = export_finetuned(run_dir, out, info, EXPORT_FORMATS)
        summary["finetune"] = {"run": run_dir.name, "val": trained.best["val"], "steps": steps}
    else:
        files = export_trained(checkpoint, best.arch, out, info, EXPORT_FORMATS)
    dump_yaml({**summary, "files": {k: str(v) for k, v in files.items()}}, out / "summary.yaml")
    return files


# -- retraining -----------------------------------------------------------------------------------
def finish_retrain(run_dir: Path, source, settings, formats: list[str], predictor=None) -> dict:
    """Best checkpoint -> calibrated decision (with its validation curve, calibration.png), test metrics,
    exported model files, metrics.json (with the predicted latency when a `LatencyPredictor` is given)."""
    from autonad.decision import CURVE_FILE
    from autonad.export import export_model
    from autonad.export.inference import ExportedModel, calibrate_decision
    from autonad.report import evaluate_for_report, write_report
    from autonad.train.subnet import load_trained_subnet

    trained = load_trained_subnet(run_dir / "best.pt")
    meta: dict[str, Any] = {**trained.net.metadata, **trained.export_info(), "retrained_on": source.name}
    model = ExportedModel(trained.net, meta, run_dir / "best.pt")
    if settings.calibrate:
        decision = calibrate_decision(model, source, settings.calibrate, settings.rule, curve=run_dir / CURVE_FILE,
                                      per_class=settings.per_class)  # fmt: skip
        meta["decision"] = decision.to_dict()
    split = "test"  # every split is non-empty (check_splits)
    report = evaluate_for_report(model, source, run_dir, split)  # with each image's outcome, for the report
    meta["metrics"] = {"split": split, **report.to_dict()}
    if predictor is not None:
        meta.update(predictor.metadata(predictor.predict(trained.arch)))
    files = export_model(trained.net, run_dir, trained.input_size, meta, formats)
    write_text_atomic(run_dir / "metrics.json", json.dumps(meta["metrics"], indent=1) + "\n")
    page = write_report(run_dir, split)
    return {"meta": meta, "report": report, "files": files, "split": split, "page": page}


@dataclass
class TuneRequest:
    """One `autonad tune`: ASHA over a retraining's settings on Ray Tune."""

    job: Any  # `autonad.train.subnet.RetrainJob`, its epochs settled
    dataset: str
    source: Any  # the dataset, opened and verified
    out: Path
    samples: int
    grace_period: int
    concurrent: int | None = None  # trials at once (None: the cluster's CPUs / threads)
    threads: int = 1
    resume: bool = False
    skip_bad: bool = False
    ray_address: str | None = None
    device: str = "auto"
    tensorboard: bool = True


def run_tune(request: TuneRequest):
    """Run the study (on a Ray cluster, joined or started here); returns the best recipe and the
    study's result (`autonad.train.tune.TuneResult`)."""
    import ray

    from autonad.cluster import connect_ray, gpu_share
    from autonad.data import absolute_reference
    from autonad.train.tune import TuneJob, tune_retraining

    job, out = request.job, request.out
    dataset, root = absolute_reference(request.dataset, request.source)
    absolute = dataclasses.replace(job, checkpoint=job.checkpoint.resolve() if job.checkpoint else None)
    owns = connect_ray(request.ray_address, None)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        concurrent = request.concurrent or max(1, cpus // request.threads)
        gpus = gpu_share(ray.cluster_resources(), request.device, concurrent)
        tune_job = TuneJob(absolute, dataset, root, request.skip_bad, out / "trials", request.threads,
                           request.tensorboard, gpus)  # fmt: skip
        console.print(f"{concurrent} trials at once")
        result = tune_retraining(tune_job, out, request.samples, request.grace_period, concurrent, request.resume)
    finally:
        if owns:
            ray.shutdown()
    best = dataclasses.replace(
        tune_job.recipe_for(result.params),
        name=f"{job.recipe.name}-tuned",
        description=(
            f"{job.recipe.name} with retraining settings tuned by ASHA over {len(result.rows)} trials on "
            f"{request.source.name} for arch {job.arch.hash} (best val {job.recipe.retrain.select} {result.value:.4f})"
        ),
    )
    return best, result
