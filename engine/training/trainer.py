"""The training loop: one RunConfig in, a run folder with metrics and checkpoints out."""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import Method, Monitor, RunConfig
from engine.events import (
    AdviceGiven,
    CheckpointSaved,
    EpochEnded,
    Event,
    LogMessage,
    RunEnded,
    RunStarted,
    RunStatus,
    StageProgressed,
    StepEnded,
)
from engine.files import write_json_atomic
from engine.runs import RunDir, Workspace
from engine.training.callbacks import (
    Callback,
    Checkpointer,
    EarlyStopping,
    EventFunction,
    MetricsWriter,
    dispatch,
)
from engine.training.checkpoint import (
    CheckpointError,
    NonFiniteWeightsError,
    commit_last,
    load_weights,
    save_weights,
)
from engine.training.checkpoint_files import BEST
from engine.training.control import Cancelled, RunControl
from engine.training.devices import Placement, resolve_placement
from engine.training.divergence import Diverged, DivergenceGuard
from engine.training.honesty import run_warnings
from engine.training.inputs import (
    RunData,
    class_weight_tensor,
    load_run_data,
    prepare_data,
    run_intensity,
)
from engine.training.loaders import auto_workers
from engine.training.metrics import classification_metrics
from engine.training.oom import (
    MicroBatcher,
    accumulate_gradients,
    free_device_memory,
    shrink_sentence,
)
from engine.training.optim import build_optimizer, build_scheduler, param_groups
from engine.training.outcome import write_outcome
from engine.training.pipeline import FeaturePipeline, ImagePipeline, Pipeline
from engine.training.provenance import (
    StorageError,
    environment_facts,
    error_sentence,
    storage_sentence,
)
from engine.training.resume_state import (
    check_resumable,
    record_resume_error,
    restore,
    trainer_state,
)

MINIMIZE = {Monitor.VAL_LOSS}
ADVICE_FILE = "advice.json"


@dataclass(frozen=True)
class RunResult:
    """How a run ended and where it lives."""

    run_dir: Path
    status: RunStatus
    best_metrics: dict[str, float]
    error: str = ""
    warnings: tuple[str, ...] = ()  # the model learned nothing useful, and what to try
    evaluation: str = ""  # evaluation/val.json saved from the best epoch's predictions


def train(
    config: RunConfig,
    *,
    workspace: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    on_event: Callable[[Event], Any] | None = None,
    control: RunControl | None = None,
) -> RunResult:
    """Start a new run of ``config`` in ``workspace``."""
    config.validate()
    run = Workspace(workspace).create_run(config)
    with run.lock():
        trainer = Trainer(config, run, Workspace(workspace), callbacks, on_event, control)
        return trainer.fit()


def resume(
    ref: str | Path,
    *,
    workspace: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    on_event: Callable[[Event], Any] | None = None,
    control: RunControl | None = None,
) -> RunResult:
    """Continue a stopped run from its last checkpoint, with the same split and config.

    A completed or diverged run is refused before any file is touched, and so is a run that
    another process trains (RunBusyError) or whose files are damaged (RunFileError); a resume
    that fails before training starts leaves the run's status and results as they were.
    """
    ws = Workspace(workspace)
    run = ws.open_run(ref)
    with run.lock():
        config = run.intact_config()  # a damaged file stops here, with the run untouched
        check_resumable(run)
        trainer = Trainer(config, run, ws, callbacks, on_event, control, resuming=True)
        return trainer.fit()


class Trainer:
    """Runs one RunConfig; emits events to ordered callbacks; checks pause/cancel every step."""

    def __init__(
        self,
        config: RunConfig,
        run: RunDir,
        workspace: Workspace,
        callbacks: Iterable[Callback] = (),
        on_event: Callable[[Event], Any] | None = None,
        control: RunControl | None = None,
        *,
        resuming: bool = False,
    ) -> None:
        self.config = config
        self.run = run
        self.workspace = workspace
        self.control = control or RunControl()
        self.resuming = resuming
        extra = [EventFunction(on_event)] if on_event else []
        stock: list[Callback] = [MetricsWriter(), Checkpointer()]
        if config.schedule.early_stopping_patience:
            stock.append(EarlyStopping(config.schedule.early_stopping_patience))
        self.callbacks = sorted([*stock, *callbacks, *extra], key=lambda c: c.order)
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.scaler: torch.amp.GradScaler | None = None
        self.placement: Placement | None = None
        self.pipeline: Pipeline | None = None
        self.data: RunData | None = None
        self.max_length = 0  # text runs: tokens per text after the model's own limit
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.best_value: float | None = None
        self.best_loss: float | None = None
        self.best_epoch = -1
        self.best_metrics: dict[str, float] = {}
        self.best_warnings: list[str] = []  # honest warnings about the best epoch
        # The best epoch's validation logits: saved as the run's evaluation when it ends.
        self.best_logits: torch.Tensor | None = None
        self.evaluation_file = ""
        self.intensity = "off"  # the resolved data.intensity of an image run
        self.last_metrics: dict[str, float] = {}
        self.epochs_since_best = 0
        self.train_sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        self._stop_reason = ""
        self._best_snapshot: dict[str, torch.Tensor] | None = None
        self.divergence = DivergenceGuard(2)
        self.micro = MicroBatcher(torch.device("cpu"))  # replaced in _setup for the run's device
        # Set once this run's files start changing; a resume that fails before must not
        # record anything but the error.
        self.touched_files = False
        self.started_at = time.monotonic()
        self.advice_recording: Any = None  # the recipe advisor's recorded activations

    # -- public hooks for callbacks -------------------------------------------------------------

    def emit(self, event: Event) -> None:
        event = _with_run_id(event, self.run.run_id)
        dispatch(self.callbacks, event, self)

    def log(self, text: str, level: str = "info") -> None:
        self.emit(LogMessage(level=level, text=text))

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    @property
    def feature_cache(self) -> bool:
        return isinstance(self.pipeline, FeaturePipeline)

    def save_checkpoint(self, kind: str) -> None:
        """``best``: weights; ``last``: weights plus everything needed to resume.

        With cached features an epoch takes milliseconds, so writing the whole network every
        epoch would dominate; the head (all that changes: the backbone never runs) is
        snapshotted in memory and written when the run ends.
        """
        assert self.model is not None
        if self.feature_cache and kind == "best":
            self._best_snapshot = copy.deepcopy(self.model.head.state_dict())
            return
        if self.feature_cache and kind == "last" and not self._finishing:
            return
        self._write_checkpoint(kind)

    # -- the run ------------------------------------------------------------------------------

    _finishing = False

    def fit(self) -> RunResult:
        status, error = RunStatus.COMPLETED, ""
        started_emitted = False
        try:
            self._setup()
            self.emit(self._run_started())
            started_emitted = True
            self._loop()
            if self._stop_reason:
                self.log(self._stop_reason)
        except Cancelled:
            status = RunStatus.CANCELLED
            self.log("Run stopped by the user; `refit resume` or Resume continues it.")
        except Diverged as exc:
            status, error = RunStatus.DIVERGED, exc.sentence(self.best_epoch)
            self.log(error, level="error")
        except KeyboardInterrupt:
            self._abort()
            raise
        except BaseException as exc:
            error = self.failure_sentence(exc)
            if self.resuming and not self.touched_files:
                record_resume_error(self.run, error)
                run_dir = str(self.run.path)
                self.emit(RunEnded(status=RunStatus.FAILED, error=error, run_dir=run_dir))
            else:
                self._finish(RunStatus.FAILED, error, started_emitted)
            if isinstance(exc, OSError) and error != error_sentence(exc):
                raise StorageError(exc.errno, error) from exc
            raise
        status, error = self._finish(status, error, started_emitted)
        warnings = tuple(self.best_warnings)
        metrics = dict(self.best_metrics)
        return RunResult(self.run.path, status, metrics, error, warnings, self.evaluation_file)

    def _abort(self) -> None:
        """A second Ctrl+C: stop at once. The step under way may be half done, so no checkpoint
        is written; the run is cancelled and resumes from its last committed checkpoint."""
        if self.resuming and not self.touched_files:
            return
        sentence = "Run aborted (Ctrl+C twice); it resumes from its last saved checkpoint."
        self._finishing = True
        status, error = write_outcome(self, RunStatus.CANCELLED, "")
        self.log(sentence if status is RunStatus.CANCELLED else error, level="warning")
        self.emit(RunEnded(status=status, error=error, run_dir=str(self.run.path)))

    def failure_sentence(self, exc: BaseException) -> str:
        """One sentence for ``exc``; a failed write names the disk and says how to resume."""
        return storage_sentence(exc, self.workspace.root, self.run.run_id) or error_sentence(exc)

    def _finish(self, status: RunStatus, error: str, started: bool) -> tuple[RunStatus, str]:
        """Write the final checkpoints, summary and state; a failing disk makes the run failed
        (and resumable from its previous checkpoint) instead of leaving it "running"."""
        self._finishing = True
        if started and self.model is not None and status is not RunStatus.FAILED:
            try:
                self._final_checkpoints(status)
            except Diverged as exc:
                status, error = RunStatus.DIVERGED, exc.sentence(self.best_epoch)
                self.log(error, level="error")
            except Exception as exc:
                status, error = RunStatus.FAILED, self.failure_sentence(exc)
                self.log(error, level="error")
        if status in (RunStatus.FAILED, RunStatus.DIVERGED):
            self.best_warnings = []
        # A diverged run keeps the best checkpoint of an epoch before it broke: evaluated too.
        if status in (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.DIVERGED):
            self._save_evaluation()
        for warning in self.best_warnings:
            self.log(warning, level="warning")
        status, error = write_outcome(self, status, error)
        self.emit(
            RunEnded(
                status=status,
                error=error,
                best_metrics=dict(self.best_metrics),
                run_dir=str(self.run.path),
                warnings=tuple(self.best_warnings),
            )
        )
        return status, error

    def _final_checkpoints(self, status: RunStatus) -> None:
        """The in-memory best of a cached-feature run, the last state (not after divergence:
        those weights are broken), and a LoRA run's adapter."""
        if self._best_snapshot is not None:
            head = self.model.head
            current = copy.deepcopy(head.state_dict())
            head.load_state_dict(self._best_snapshot)
            self._write_checkpoint("best")
            head.load_state_dict(current)
        if status is not RunStatus.DIVERGED:
            self._write_checkpoint("last")
        self._save_adapter()

    def _save_evaluation(self) -> None:
        """The best epoch's validation predictions become the run's evaluation, tied to the best
        checkpoint file (a later best rewrites that file, which makes them stale)."""
        if self.best_logits is None:
            return
        from engine.evaluation.in_training import save_best_evaluation

        try:
            result = save_best_evaluation(self.run, self.best_logits)
        except Exception as exc:  # the run itself is fine; Evaluate on the Results page remains
            why = error_sentence(exc).rstrip(".")
            self.log(
                f"The validation evaluation was not saved ({why}); Evaluate on the Results page "
                f"(or `refit evaluate {self.run.run_id}`) makes it.",
                level="warning",
            )
            return
        if result is not None:
            from engine.evaluation.report import evaluation_path

            self.evaluation_file = str(evaluation_path(self.run, result.split))

    def _save_adapter(self) -> None:
        """A LoRA run also leaves its best adapter in peft's format (and the merged model)."""
        from engine.models.lora import ADAPTER_DIR, MERGED_DIR, is_lora, save_adapter, save_merged

        if not is_lora(self.model):
            return
        best = self.run.checkpoints / BEST
        model = copy.deepcopy(self.model).cpu()
        if best.is_file():
            load_weights(model, best)
        classes = list(self.data.classes)
        folder = save_adapter(model, self.run.path / ADAPTER_DIR, classes)
        self.log(f"LoRA adapter saved in peft's format: {folder}")
        if self.config.adapt.lora_save_merged:
            merged = save_merged(model, self.run.path / MERGED_DIR)
            self.log(f"Model with the adapter merged into its weights saved: {merged}")

    def _setup(self) -> None:
        cfg = self.config
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if cfg.device.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.placement = resolve_placement(cfg.device)
        self.micro = MicroBatcher(self.placement.device, on_shrink=self._on_micro_shrink)
        torch.backends.cudnn.benchmark = not cfg.device.deterministic
        self.data = self._load_data()
        from engine.models import adapt_model, backbone_is_frozen, build_model, resolve_entry

        check_modality(resolve_entry(cfg.model.backbone), self.data)
        model = build_model(cfg.model, len(self.data.classes))
        if model.modality == "image":
            self.intensity, why = run_intensity(cfg, self.data, self.run, resuming=self.resuming)
            model.preprocess = dataclasses.replace(model.preprocess, intensity=self.intensity)
            if why:
                self.log(why)
        self.channels_last = cfg.device.channels_last and model.entry.is_convnet
        self.workers = auto_workers(cfg.data.num_workers)
        self._place(model)
        if cfg.adapt.method is Method.AUTO:
            if self.resuming:  # config.json is rewritten once the recipe is chosen
                raise CheckpointError(
                    f"The run {self.run.run_id} stopped while the Recommended method was still "
                    "choosing its recipe, before anything was trained; start a new run from its "
                    "config."
                )
            cfg = self._recommend(model)
        frozen, self.param_count = adapt_model(model, cfg.adapt)
        if self.param_count.trainable == 0:
            raise ValueError("Every layer is frozen, so nothing would train; unfreeze the head.")
        text = model.modality == "text"
        if text:
            from engine.models.text import token_limit

            self.max_length = token_limit(model.tokenizer, model.backbone, cfg.data.max_length)
        self._place(model)
        self.model = model
        weights = class_weight_tensor(self.data, cfg.optim.class_weights)
        self.criterion = nn.CrossEntropyLoss(
            weight=weights.to(self.placement.device) if weights is not None else None,
            label_smoothing=cfg.optim.label_smoothing,
        )
        self.pipeline = self._pipeline(text, backbone_is_frozen(model), frozen)
        if cfg.device.runtime == "onnxruntime" and not self.pipeline.frozen_compute:
            self.log(  # asked for by name: say why it is not used rather than ignore it
                "onnxruntime runs frozen layers whose outputs are computed once (a linear "
                "probe); this run trains through its backbone, so it runs in torch."
            )
        self.optimizer = build_optimizer(param_groups(model, model.head, cfg.optim), cfg.optim)
        total = self.pipeline.steps_per_epoch * cfg.schedule.epochs
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, total)
        if self.placement.needs_grad_scaler:
            self.scaler = torch.amp.GradScaler("cuda")
        self.divergence = DivergenceGuard(len(self.data.classes))
        self._log_memory_estimate()
        if self.resuming:
            # Everything that can fail on a moved dataset or a damaged checkpoint runs before
            # the first file of the run changes.
            restore(self)
            self.pipeline.prepare()
            self.touched_files = True
            # Lines written after the checkpoint (a crash) would be duplicated on resume.
            self.run.keep_metrics_until(self.global_step, self.epoch)
            self.log(f"Resuming at epoch {self.epoch + 1}, step {self.global_step}.")
        self.touched_files = True
        self._mark_running(frozen, text)
        if not self.resuming:
            self.pipeline.prepare()
        self.advice_recording = None  # whatever the pipeline reused is its own now

    def _place(self, model: nn.Module) -> None:
        model.to(self.placement.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def _recommend(self, model: nn.Module) -> RunConfig:
        """Method auto: choose the recipe on the training data; the run's config.json then
        holds the resolved recipe (a replay runs it as is) and advice.json the evidence."""
        from engine.advice.recommend import recommend

        advice = recommend(self, model)
        self.config = advice.config
        write_json_atomic(self.run.config_path, self.config.to_dict())
        write_json_atomic(self.run.path / ADVICE_FILE, advice.to_dict())
        self.advice_recording = advice.recording
        self.emit(AdviceGiven(advice=advice.to_dict()))
        self.log(f"Recommended recipe: {advice.reason}")
        return self.config

    def _pipeline(self, text: bool, frozen_backbone: bool, frozen: list[str]) -> Pipeline:
        if not frozen_backbone and self.config.adapt.cache_prefix:
            from engine.training.prefix_pipeline import PrefixPipeline, prefix_cut, uncached

            cut = None if text else prefix_cut(self, self.model, frozen)
            if cut is not None:
                return PrefixPipeline(self, *cut)
            self.log(uncached(self.config.adapt.method, self.model, frozen, text), level="warning")
        return _pipeline_class(text, frozen_backbone)(self)

    def _log_memory_estimate(self) -> None:
        """One log line before the first step: the step's peak memory and the device's (not
        for features computed in onnxruntime: the measurement runs torch, which they do not)."""
        from engine.frozen import use_onnxruntime
        from engine.training.memory import estimate_peak_memory

        runtime = self.config.device.runtime
        if self.feature_cache and use_onnxruntime(runtime, self.placement.device):
            return
        tokens = self.max_length or None
        try:
            estimate = estimate_peak_memory(
                self.model, self.config, None, placement=self.placement, text_tokens=tokens
            )
        except Exception as exc:  # advice only: a model the measurement cannot run still trains
            free_device_memory(self.placement.device)
            self.log(f"No memory estimate ({type(exc).__name__}: {exc}).", level="warning")
            return
        self.log(estimate.sentence(), level="info" if estimate.fits else "warning")

    def _mark_running(self, frozen: list[str], text: bool) -> None:
        self.run.update_state(
            status="running",
            resumable=False,
            **environment_facts(self.placement),
            feature_cache=self.feature_cache,
            trainable_params=self.param_count.trainable,
            total_params=self.param_count.total,
            frozen_groups=frozen,
            modality=self.data.modality,
            method=str(self.config.adapt.method),
            **({"max_length": self.max_length} if text else {"intensity": self.intensity}),
        )

    def _load_data(self) -> RunData:
        if self.resuming:
            return load_run_data(self.run)

        def progress(done: int, total: int) -> None:
            self.emit(StageProgressed(stage="scan", done=done, total=total))

        data = prepare_data(self.config, control=self.control, on_progress=progress)
        if self.control.cancelled:
            raise Cancelled()
        for problem in data.problems:
            self.log(problem.message, level="warning")
        self.run.write_splits(data.to_dict())
        return data

    def _run_started(self) -> RunStarted:
        assert self.data is not None and self.placement is not None and self.pipeline
        epochs, steps = self.config.schedule.epochs, self.pipeline.steps_per_epoch
        if self.feature_cache:
            from engine.training.probe import probe_plan

            epochs, steps = probe_plan(self)
        return RunStarted(
            run_dir=str(self.run.path),
            epochs=epochs,
            steps_per_epoch=steps,
            start_epoch=self.epoch,
            device=self.placement.description,
            precision=str(self.placement.precision),
            trainable_params=self.param_count.trainable,
            total_params=self.param_count.total,
            train_size=len(self.data.train),
            val_size=len(self.data.val),
            classes=self.data.classes,
            feature_cache=self.feature_cache,
            modality=self.data.modality,
        )

    def _loop(self) -> None:
        assert self.pipeline is not None
        if self.feature_cache:
            from engine.training.probe import ProbeFit

            ProbeFit(self).run()
            return
        epochs = self.config.schedule.epochs
        while self.epoch < epochs and not self._stop_reason:
            t0 = time.monotonic()
            self._train_epoch()
            logits, targets = self.pipeline.validation_logits()
            metrics = classification_metrics(logits, targets, self.data.classes)
            seen = max(1.0, self.train_sums["seen"])
            metrics["train_loss"] = self.train_sums["loss"] / seen
            metrics["train_accuracy"] = self.train_sums["correct"] / seen
            metrics["lr"] = self._current_lr()
            self.divergence.check_validation(metrics, self.epoch, metrics["lr"])
            is_best = self._update_best(metrics)
            if is_best:
                self.best_logits = logits
                self.best_warnings = run_warnings(
                    logits, targets, self.data.classes, self.data.modality
                )
            epoch = self.epoch
            self.epoch += 1
            self.step_in_epoch = 0
            self.train_sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
            self.last_metrics = metrics
            seconds = time.monotonic() - t0
            self.emit(
                EpochEnded(
                    epoch=epoch,
                    epochs=epochs,
                    metrics=metrics,
                    is_best=is_best,
                    seconds=seconds,
                )
            )
            self._check_budget(seconds)

    def _train_epoch(self) -> None:
        assert self.model is not None and self.pipeline is not None
        self.model.train()
        steps = self.pipeline.steps_per_epoch
        total_steps = steps * self.config.schedule.epochs
        clip = self.config.optim.grad_clip
        t_last = time.perf_counter()
        for x, y in self.pipeline.train_batches(self.epoch, self.step_in_epoch):
            self.control.wait_while_paused()
            loss_value, correct = self.micro.run(
                len(y),
                lambda size, x=x, y=y: accumulate_gradients(self, x, y, size),
                cleanup=lambda: self.optimizer.zero_grad(set_to_none=True),
            )
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            if clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
            self.divergence.check_step(loss_value, self.global_step + 1, self._current_lr())
            n = len(y)
            self.train_sums["loss"] += loss_value * n
            self.train_sums["correct"] += correct
            self.train_sums["seen"] += n
            self.global_step += 1
            self.step_in_epoch += 1
            now = time.perf_counter()
            self.emit(
                StepEnded(
                    step=self.global_step,
                    epoch=self.epoch,
                    total_steps=total_steps,
                    loss=loss_value,
                    lr=self._current_lr(),
                    samples_per_sec=n / max(now - t_last, 1e-9),
                )
            )
            t_last = now
            if self.control.cancelled:
                raise Cancelled()

    def _check_budget(self, epoch_seconds: float) -> None:
        """Stop before an epoch that would end past schedule.time_budget_min."""
        budget = self.config.schedule.time_budget_min * 60
        if not budget or self.epoch >= self.config.schedule.epochs:
            return
        if time.monotonic() - self.started_at + epoch_seconds > budget:
            self.request_stop(
                f"Time budget of {self.config.schedule.time_budget_min:g} min reached: stopped "
                f"after epoch {self.epoch} of {self.config.schedule.epochs}; the best epoch is "
                "kept."
            )

    def _on_micro_shrink(self, _rows: int, size: int) -> None:
        """A training step ran out of device memory: say so, and record the micro-batch so a
        resumed run starts at it."""
        batch = self.config.schedule.batch_size
        self.log(shrink_sentence(self.placement.device, batch, size), level="warning")
        self.run.update_state(micro_batch=size)

    def _current_lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def _update_best(self, metrics: dict[str, float]) -> bool:
        monitor = self.config.schedule.monitor
        value, loss = metrics[str(monitor)], metrics["val_loss"]
        if self.best_value is None:
            better = True
        elif monitor in MINIMIZE:
            better = value < self.best_value
        else:
            # Equal accuracy (common on small validation sets) counts as better only when the
            # loss improves by a meaningful margin, so noise does not reset early stopping.
            best_loss = self.best_loss if self.best_loss is not None else float("inf")
            better = value > self.best_value or (
                value == self.best_value and loss < best_loss - max(1e-4, 1e-3 * abs(best_loss))
            )
        if better:
            self.best_value, self.best_loss, self.best_epoch = value, loss, self.epoch
            self.best_metrics = {"epoch": float(self.epoch), **metrics}
            self.epochs_since_best = 0
        else:
            self.epochs_since_best += 1
        return better

    # -- checkpoints ----------------------------------------------------------------------------

    def _write_checkpoint(self, kind: str) -> None:
        ckpt = self.run.checkpoints
        try:
            if kind == "last":
                state = trainer_state(self)
                path = commit_last(
                    ckpt, self.model, state, epoch=self.epoch, global_step=self.global_step
                ).weights
            else:
                metadata = {"epoch": str(self.epoch), "kind": kind}
                path = save_weights(self.model, ckpt / f"{kind}.safetensors", metadata=metadata)
        except NonFiniteWeightsError as exc:
            what = f"the weights became NaN or infinite by step {self.global_step}"
            raise Diverged(what, self._current_lr()) from exc
        self.emit(CheckpointSaved(path=str(path), kind=kind, epoch=self.epoch))


def check_modality(entry: Any, data: RunData) -> None:
    """A text dataset needs a text backbone and images an image backbone; say which to pick."""
    if entry.modality == data.modality:
        return
    from engine.models import ModelError
    from engine.models.catalog import STARTER, TEXT_STARTER

    starter = TEXT_STARTER if data.modality == "text" else STARTER
    raise ModelError(
        f"The dataset holds {data.modality}s but {entry.display_name} is a {entry.modality} "
        f"model; choose a {data.modality} backbone, for example {starter}."
    )


def _pipeline_class(text: bool, frozen: bool) -> type[Pipeline]:
    if text:
        from engine.training.text_pipeline import TextFeaturePipeline, TextPipeline

        return TextFeaturePipeline if frozen else TextPipeline
    return FeaturePipeline if frozen else ImagePipeline


def _with_run_id(event: Event, run_id: str) -> Event:
    if event.run_id:
        return event
    return dataclasses.replace(event, run_id=run_id)
