"""A run's set-up before its first step: the data, the model and its recipe, the pipeline that
feeds it, and the log lines and state.json facts that go with them."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import torch
from torch import nn

from engine.config import Method, RunConfig
from engine.events import AdviceGiven, RunStarted, StageProgressed
from engine.files import write_json_atomic
from engine.modalities import modality_of
from engine.models.classifier import ParamCount
from engine.task import Cancelled
from engine.training.checkpoint_files import CheckpointError
from engine.training.context import Optimization, RunContext
from engine.training.inputs import (
    RunData,
    class_weight_tensor,
    load_run_data,
    prepare_data,
    run_intensity,
)
from engine.training.loaders import auto_workers
from engine.training.oom import free_device_memory
from engine.training.optim import build_optimizer, build_scheduler, param_groups
from engine.training.patients import (
    deidentified_sentence,
    dicom_record,
    patients_sentence,
    split_patients,
)
from engine.training.pipeline import FeaturePipeline, Pipeline
from engine.training.provenance import environment_facts

ADVICE_FILE = "advice.json"


def seed_everything(config: RunConfig) -> None:
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.device.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not config.device.deterministic


def check_modality(entry: Any, data: RunData) -> None:
    """A text dataset needs a text backbone and images an image backbone; say which to pick."""
    if modality_of(entry) is modality_of(data):
        return
    from engine.models import ModelError

    wanted = modality_of(data)
    raise ModelError(
        f"The dataset holds {wanted.noun} but {entry.display_name} is a {entry.modality} "
        f"model; choose a {wanted.name} backbone, for example {wanted.starter}."
    )


def load_data(ctx: RunContext) -> RunData:
    """A resumed run's stored splits, or a new run's data scanned and split (splits.json)."""
    if ctx.resuming:
        data = load_run_data(ctx.run)
        _log_patients(ctx, data)
        return data
    if not ctx.dist.is_main:  # several processes: rank 0 scans and writes splits.json
        ctx.dist.barrier()
        return load_run_data(ctx.run)

    def progress(done: int, total: int) -> None:
        ctx.emit(StageProgressed(stage="scan", done=done, total=total))

    # The scan decodes DICOM files with the run's window (the modality's scan_for_run passes
    # data.dicom_window), like everything after it.
    data = prepare_data(
        ctx.config, task=ctx.task.stage(0.0, 1.0, lambda p: progress(p.done, p.total))
    )
    if ctx.task.cancelled:
        raise Cancelled()
    for problem in data.problems:
        ctx.log(problem.message, level="warning")
    ctx.run.write_splits(data.to_dict())
    ctx.dist.barrier()  # the other ranks read the split rank 0 wrote
    _log_patients(ctx, data)
    dicom = dicom_record(data)
    if dicom is not None:
        ctx.log(deidentified_sentence(dicom))
    return data


def _log_patients(ctx: RunContext, data: RunData) -> None:
    """A run split by patient logs its patients and images per split (counts only)."""
    counts = split_patients(data)
    if counts is not None:
        ctx.log(patients_sentence(counts))


def build_run_model(ctx: RunContext) -> tuple[list[str], ParamCount]:
    """The run's model, its recipe chosen (method auto), adapted and placed, as ``ctx.model``;
    returns its frozen groups and its parameter counts."""
    from engine.models import adapt_model, build_model, resolve_entry

    cfg, data = ctx.config, ctx.data
    check_modality(resolve_entry(cfg.model.backbone), data)
    model = build_model(cfg.model, len(data.classes))
    modality = modality_of(model)
    if modality.has_intensity:
        ctx.intensity, why = run_intensity(cfg, data, ctx.run, resuming=ctx.resuming)
        window = str(cfg.data.dicom_window)  # travels in the transforms built from this
        model.preprocess = dataclasses.replace(
            model.preprocess, intensity=ctx.intensity, dicom_window=window
        )
        if why:
            ctx.log(why)
    ctx.channels_last = cfg.device.channels_last and model.entry.is_convnet
    ctx.workers = auto_workers(cfg.data.num_workers)
    place(ctx, model)
    if cfg.adapt.method is Method.AUTO:
        if ctx.resuming:  # config.json is rewritten once the recipe is chosen
            raise CheckpointError(
                f"The run {ctx.run.run_id} stopped while the Recommended method was still "
                "choosing its recipe, before anything was trained; start a new run from its "
                "config."
            )
        cfg = recommend(ctx, model)
    frozen, count = adapt_model(model, cfg.adapt)
    if count.trainable == 0:
        raise ValueError("Every layer is frozen, so nothing would train; unfreeze the head.")
    ctx.max_length = modality.token_limit(model, cfg.data.max_length)
    place(ctx, model)
    ctx.model = model
    return frozen, count


def place(ctx: RunContext, model: nn.Module) -> None:
    model.to(ctx.placement.device)
    if ctx.channels_last:
        model.to(memory_format=torch.channels_last)


def recommend(ctx: RunContext, model: Any) -> RunConfig:
    """Method auto: choose the recipe on the training data; the run's config.json then
    holds the resolved recipe (a replay runs it as is) and advice.json the evidence (written
    by rank 0 alone in a job of several processes, whose ranks share the advisor's passes)."""
    from engine.advice.recommend import follow
    from engine.advice.recommend import recommend as advise

    if not ctx.dist.is_main:  # several processes: each rank runs its share of the advisor's
        # passes, rank 0 chooses, every rank trains its choice (on the gathered recording)
        recording = follow(ctx, model)
        ctx.config = RunConfig.from_dict(ctx.dist.broadcast(None))
        ctx.advice_recording = recording
        return ctx.config
    advice = advise(ctx, model)
    ctx.config = advice.config
    write_json_atomic(ctx.run.config_path, ctx.config.to_dict())
    write_json_atomic(ctx.run.path / ADVICE_FILE, advice.to_dict())
    ctx.advice_recording = advice.recording
    ctx.emit(AdviceGiven(advice=advice.to_dict()))
    ctx.log(f"Recommended recipe: {advice.reason}")
    ctx.dist.broadcast(ctx.config.to_dict())
    return ctx.config


def criterion(ctx: RunContext) -> nn.CrossEntropyLoss:
    """The loss: cross-entropy with the configured class weights and label smoothing."""
    weights = class_weight_tensor(ctx.data, ctx.config.optim.class_weights)
    return nn.CrossEntropyLoss(
        weight=weights.to(ctx.placement.device) if weights is not None else None,
        label_smoothing=ctx.config.optim.label_smoothing,
    )


def optimization(ctx: RunContext, steps_per_epoch: int) -> Optimization:
    """The optimizer over the model's parameter groups, its schedule over the whole run, and
    the gradient scaler of fp16 on CUDA."""
    cfg, model = ctx.config, ctx.model
    optimizer = build_optimizer(param_groups(model, model.head, cfg.optim), cfg.optim)
    total = steps_per_epoch * cfg.schedule.epochs
    scheduler = build_scheduler(optimizer, cfg.schedule, total)
    scaler = torch.amp.GradScaler("cuda") if ctx.placement.needs_grad_scaler else None
    return Optimization(optimizer, scheduler, scaler)


def choose_pipeline(ctx: RunContext, frozen: list[str]) -> Pipeline:
    """What feeds the model: cached features of a frozen backbone, cached activations of a
    frozen prefix, or batches through the network; ``ctx.feature_cache`` is set to match."""
    from engine.models import backbone_is_frozen

    pipeline = _pipeline(ctx, backbone_is_frozen(ctx.model), frozen)
    ctx.feature_cache = isinstance(pipeline, FeaturePipeline)
    if ctx.config.device.runtime == "onnxruntime" and not pipeline.frozen_compute:
        ctx.log(  # asked for by name: say why it is not used rather than ignore it
            "onnxruntime runs frozen layers whose outputs are computed once (a linear "
            "probe); this run trains through its backbone, so it runs in torch."
        )
    return pipeline


def _pipeline(ctx: RunContext, frozen_backbone: bool, frozen: list[str]) -> Pipeline:
    modality = modality_of(ctx.model)
    if not frozen_backbone and ctx.config.adapt.cache_prefix:
        from engine.training.prefix_pipeline import PrefixPipeline, prefix_cut, uncached

        cut = prefix_cut(ctx, ctx.model, frozen) if modality.caches_prefix else None
        if cut is not None:
            return PrefixPipeline(ctx, *cut)
        ctx.log(uncached(ctx.config.adapt.method, ctx.model, frozen, modality), level="warning")
    pipeline: Pipeline = modality.pipeline(frozen_backbone)(ctx)
    return pipeline


def log_memory_estimate(ctx: RunContext) -> None:
    """One log line before the first step: the step's peak memory and the device's (not
    for features computed in onnxruntime: the measurement runs torch, which they do not)."""
    from engine.frozen import use_onnxruntime
    from engine.training.memory import estimate_peak_memory

    runtime = ctx.config.device.runtime
    if ctx.feature_cache and use_onnxruntime(runtime, ctx.placement.device):
        return
    tokens = ctx.max_length or None
    try:
        estimate = estimate_peak_memory(
            ctx.model, ctx.config, None, placement=ctx.placement, text_tokens=tokens
        )
    except Exception as exc:  # advice only: a model the measurement cannot run still trains
        free_device_memory(ctx.placement.device)
        ctx.log(f"No memory estimate ({type(exc).__name__}: {exc}).", level="warning")
        return
    ctx.log(estimate.sentence(), level="info" if estimate.fits else "warning")


def mark_running(ctx: RunContext, frozen: list[str], count: ParamCount) -> None:
    """state.json: running, with the run's resolved facts."""
    facts = modality_of(ctx.model).state_facts(max_length=ctx.max_length, intensity=ctx.intensity)
    ctx.run.update_state(
        status="running",
        resumable=False,
        **environment_facts(ctx.placement),
        feature_cache=ctx.feature_cache,
        trainable_params=count.trainable,
        total_params=count.total,
        frozen_groups=frozen,
        modality=ctx.data.modality,
        method=str(ctx.config.adapt.method),
        **facts,
    )


def run_started(ctx: RunContext, pipeline: Pipeline, count: ParamCount) -> RunStarted:
    """The RunStarted event: what trains, on what, for how long."""
    epochs, steps = ctx.config.schedule.epochs, pipeline.steps_per_epoch
    if ctx.feature_cache:
        from engine.training.probe import probe_plan

        epochs, steps = probe_plan(ctx)
    return RunStarted(
        run_dir=str(ctx.run.path),
        epochs=epochs,
        steps_per_epoch=steps,
        start_epoch=ctx.loop.epoch,
        device=ctx.placement.description,
        precision=str(ctx.placement.precision),
        trainable_params=count.trainable,
        total_params=count.total,
        train_size=len(ctx.data.train),
        val_size=len(ctx.data.val),
        classes=ctx.data.classes,
        feature_cache=ctx.feature_cache,
        modality=ctx.data.modality,
    )
