"""The one run lifecycle every task trains through (after Model Garden's `train_lib`).

    start   strategy FIRST, this process's role, preflight, run directory, config, seeds,
            precision; non-chief workers write to a temporary directory
    train   data, the `pretrain:` language model (trained or reused, `tfnlp.training.pretraining`),
            vocabulary (learned or reused; a stale backup is discarded), the model built
            in `strategy.scope()` (and warm-started from `model.init_from` unless resuming),
            `model.fit` with the standard callbacks, the NaN guard
    finish  best weights, evaluation, export, plots, metrics.json (with phase timings and
            peak memory); workers clean up

`train_pipeline` reads top to bottom through `Run`'s phases; the task (`tfnlp.tasks`)
supplies only what differs between tasks, and `tfnlp.training.trained` reads a finished run
back (`load_trained`, `evaluate_run`, `export_run`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnlp.atomic import is_remote
from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.disk import disk_guard, variable_bytes
from tfnlp.evaluation.plots import plot_training_curves
from tfnlp.evaluation.side_process import SideProcess
from tfnlp.export.warmup import MAX_WARMUP_TEXTS
from tfnlp.tasks import Task, TrainingInputs, get_task
from tfnlp.training.callbacks import standard_callbacks
from tfnlp.training.distributed import (
    distributed_settings,
    finish_worker,
    peers_watched,
    worker_callbacks,
)
from tfnlp.training.engines import parallelism_for
from tfnlp.training.parallelism import Parallelism
from tfnlp.training.precision import precision_scope, resolve_policy, with_loss_scaling
from tfnlp.training.preflight import (
    PreflightError,
    check_writable,
    run_disk_bytes,
    run_preflight,
)
from tfnlp.training.pretraining import PRETRAIN_DIR, pretrain_language_model, with_pretrained
from tfnlp.training.remote_run import RunMirror
from tfnlp.training.resume import BACKUPS_KEPT, KeptBackupAndRestore, prepare_resume
from tfnlp.training.run_directory import RunDirectory, fingerprint
from tfnlp.training.run_lock import RunLock
from tfnlp.training.strategy import TaskRole, create_strategy, fix_metric_reduction, is_chief_task
from tfnlp.training.timings import PhaseTimings, peak_rss_mb
from tfnlp.training.trained import load_trained, publish_run
from tfnlp.training.unfreezing import (
    GradualUnfreezing,
    layer_rate_factors,
    with_layer_rates,
)
from tfnlp.training.vocabulary_from import borrowed_vocabulary, preprocessor_with
from tfnlp.training.warm_start import resumed_warm_start, warm_start_run

logger = logging.getLogger("tfnlp")


@dataclass
class TrainingResult:
    model: keras.Model
    metrics: dict
    run_dir: Path | str
    export_path: Path | None


def compile_for_training(model: keras.Model, task: Task, config: PipelineConfig,
                         parallelism: Parallelism | None = None) -> None:
    """AdamW (loss-scaled under mixed_float16) with the task's loss and metrics.

    Called inside `precision_scope`: the global policy is the run's policy. `parallelism`
    supplies the optimizer (DTensor's mesh-aware one, or a reduced-precision all-reduce).
    With `train.layer_lr_decay` below 1, each layer group's updates are scaled by its factor
    (`tfnlp.training.unfreezing`).
    """
    parallelism = parallelism or Parallelism(config)
    decay = config.train.layer_lr_decay
    options = {"learning_rate": config.train.learning_rate,
               "weight_decay": config.train.weight_decay}
    if decay == 1.0:
        optimizer = parallelism.optimizer(keras.optimizers.AdamW, **options)
    else:
        factors = layer_rate_factors(model, decay)
        optimizer = parallelism.optimizer(with_layer_rates(keras.optimizers.AdamW),
                                          factors=factors, **options)
        optimizer.set_model(model)
        logger.info("layer learning rates: %s", ", ".join(
            f"{name} {config.train.learning_rate * factor:.3g}"
            for name, factor in factors.items()))
    policy = keras.mixed_precision.global_policy().name
    model.compile(optimizer=with_loss_scaling(optimizer, policy), loss=task.loss(),
                  metrics=task.metrics(), jit_compile=config.train.jit_compile)


def fit_verbosity() -> int:
    """Keras's progress bar on a terminal; else nothing, since `EpochSummary` already logs
    one line per epoch, and Keras's own line would repeat it at a cost: its ProgbarLogger
    walks every layer of the model (`Model.metrics`, ~1.7 ms here) after every batch."""
    return 1 if sys.stdout.isatty() else 0


def checkpoint_bytes(fitted: keras.Model) -> int:
    """About what one run's checkpoints take: best, latest and the kept backups, each with
    the weights and AdamW's two slots per trainable weight."""
    per_checkpoint = variable_bytes(fitted.variables) + 2 * variable_bytes(
        fitted.trainable_variables)
    return (2 + BACKUPS_KEPT) * per_checkpoint


def prepare_preprocessor(task: Task, data, run: RunDirectory):
    """The task's preprocessing layer: the run's stored vocabulary when it was learned from the
    same texts and settings, else learned now (and an interrupted run's backup discarded,
    since its embeddings index the old vocabulary)."""
    key = task.vocabulary_key(data)
    borrowed = borrowed_vocabulary(task.config)  # `preprocessing.vocabulary_from`
    if borrowed is not None:
        key = fingerprint(key, borrowed.tokens)  # another source's tokens: another model
    vocabulary = run.read_vocabulary(key)
    if vocabulary is not None:
        logger.info("vocabulary: reusing %s (%d tokens)", run.vocabulary_file, len(vocabulary))
        return task.preprocessor_from(vocabulary)
    if run.has_backup:
        logger.warning("data or preprocessing changed: discarding the backup in %s",
                       run.backup_dir)
        shutil.rmtree(run.backup_dir)
    if borrowed is not None:
        layer = preprocessor_with(task, borrowed)
        run.write_vocabulary(list(layer.vocabulary), key)
        logger.info("vocabulary: %d tokens from %s (preprocessing.vocabulary_from)",
                    layer.vocabulary_size, borrowed.file)
        return layer
    start = time.perf_counter()
    layer = task.learn_preprocessor(data)
    run.write_vocabulary(list(layer.vocabulary), key)
    logger.info("vocabulary: learned %d tokens in %.1f s", layer.vocabulary_size,
                time.perf_counter() - start)
    return layer


@dataclass
class Run:
    """One pipeline run in this process, as `start` sets it up.

    Attributes:
        config: the pipeline, with the learning rate the optimizer uses.
        task: the pipeline's task.
        strategy: the distribution strategy (created before any other TensorFlow work).
        role: this process's place in the cluster (or "local").
        policy: the concrete precision policy.
        directory: where this process writes (a non-chief worker's temporary directory).
        shared: the run directory every process shares (callbacks, backups).
        parallelism: how the model is spread over this process's devices (data parallelism
            by default; DTensor shards or pipeline stages).
        lock: the chief's hold on `shared` (None on other workers); released on `__exit__`.
        warm_start: what `model.init_from` loaded (metrics.json's `init_from`), once built.
    """

    config: PipelineConfig
    task: Task
    strategy: tf.distribute.Strategy
    role: TaskRole
    policy: str
    directory: RunDirectory
    shared: RunDirectory
    parallelism: Parallelism
    lock: RunLock | None = None
    warm_start: dict | None = None
    _resuming: bool | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def start(cls, config: PipelineConfig, run_dir: str | Path) -> Run:
        """The chief's lock on the run directory, the strategy, then preflight, the run
        directory, config, seeds and precision.

        Raises:
            PreflightError: the task cannot train under the configured strategy (before any
                other work), or the directories or disk cannot hold the run.
            RunDirectoryInUse: another live tfnlp command holds the run directory.
        """
        unsupported = get_task(config).unsupported_strategies.get(config.distribute.strategy)
        if unsupported:
            raise PreflightError(f"`distribute.strategy: {config.distribute.strategy}` cannot "
                                 f"train `task: {config.task}`: {unsupported}")
        shared = RunDirectory(Path(run_dir))
        # One writer per run directory: the chief locks it before anything (a log line
        # included) is written there, and holds it until `__exit__`. Locking runs no
        # TensorFlow op, so the strategy still comes before any.
        lock = None
        if is_chief_task():
            check_writable(shared.path, "--run-dir")
            lock = RunLock(shared.path, "train").acquire()
        try:
            return cls._start_locked(config, shared, lock)
        except BaseException:
            if lock:
                lock.release()
            raise

    @classmethod
    def _start_locked(cls, config: PipelineConfig, shared: RunDirectory, lock) -> Run:
        # First: multi-worker strategies must exist before TensorFlow runs any op.
        strategy, why = create_strategy(config.distribute)
        logger.info("strategy: %s (%s)", type(strategy).__name__, why)
        config, role = distributed_settings(config, strategy)
        task = get_task(config)
        # Non-chief workers write to a temporary directory (removed at the end); callbacks get
        # the shared one, where Keras itself separates the workers' checkpoints and backups.
        run_preflight(config, role.write_dir(shared.path))
        directory = RunDirectory(role.write_dir(shared.path)).create()
        directory.write_config(config)
        keras.utils.set_random_seed(config.seed)
        policy, why = resolve_policy(config.precision.policy)
        logger.info("precision: %s (%s)", policy, why)
        parallelism = parallelism_for(config, strategy)
        return cls(config, task, strategy, role, policy, directory, shared, parallelism, lock)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        if self.lock:
            self.lock.release()

    def build(self, preprocessor) -> tuple[keras.Model, keras.Model]:
        """(the served model, what `fit` trains), built and compiled in the strategy's scope."""
        def make_models():
            model = self.task.build_model(preprocessor)
            return model, self.task.trainable_model(model)

        with self.strategy.scope(), precision_scope(self.policy):
            model, fitted = self.parallelism.build(make_models)
            compile_for_training(fitted, self.task, self.config, self.parallelism)
            fix_metric_reduction(fitted, self.strategy)
        self.warm_start_from_source(fitted, preprocessor)
        return model, fitted

    def warm_start_from_source(self, fitted: keras.Model, preprocessor) -> None:
        """Loads `model.init_from`'s matching layers into `fitted`; not when resuming, since
        the backup's weights (which Keras restores in `fit`) must win."""
        if self.config.model.init_from is None:
            return
        if self.resuming():
            self.warm_start = resumed_warm_start(self.directory, self.shared.backup_dir)
            return

        def template():  # this pipeline's model, for a checkpoint no run directory describes
            with precision_scope(self.policy):
                return self.task.trainable_model(self.task.build_model(preprocessor))

        self.warm_start = warm_start_run(self.config, fitted, self.directory,
                                         assign_scope=self.strategy.scope, template=template,
                                         own_dir=self.shared.path)

    def use_pretrained(self, directory: Path) -> None:
        """Fine-tunes from the `pretrain:` stage's language model in `directory` (its
        vocabulary and layers); config.yaml keeps the pipeline as written."""
        self.config = with_pretrained(self.config, directory)
        self.task.config = self.config
        # The same initial weights whether the language model was trained now or reused.
        keras.utils.set_random_seed(self.config.seed)

    def resuming(self) -> bool:
        """Whether `fit` resumes from a backup; the chief checks (and repairs) it, once."""
        if self._resuming is None:
            resuming = self.shared.has_backup
            if self.role.is_chief:  # the chief repairs the shared backup; workers restore it
                resuming = resuming and prepare_resume(self.shared.backup_dir,
                                                       self.config.train.resume)
            self._resuming = resuming
        return self._resuming

    def fit(self, fitted: keras.Model, data, inputs: TrainingInputs, extra_callbacks=None):
        """`model.fit` with the standard and the task's callbacks, resuming from a backup;
        then the NaN guard. Returns the `EpochSummary` (throughput)."""
        resuming = self.resuming()
        if self.role.is_chief:
            self.directory.write_checkpoint_identity(self.config)
        callbacks, summary = standard_callbacks(
            self.shared.path, monitor=self.task.monitor(data),
            patience=self.config.train.early_stopping_patience,
            examples_per_epoch=inputs.examples_per_epoch,
            strategy_name=type(self.strategy).__name__,
        )
        callbacks += self.task.callbacks(self.directory, fresh_start=not resuming)
        if self.config.train.unfreeze == "gradual":
            callbacks.append(GradualUnfreezing())
        callbacks = worker_callbacks(callbacks + list(extra_callbacks or []), self.role,
                                     self.directory.path)
        if resuming:
            logger.info("resuming from the backup in %s", self.shared.backup_dir)
        else:
            # A fresh start: the epoch log must not continue an earlier run's.
            (self.directory.path / "history.csv").unlink(missing_ok=True)
        self._fit_guarded(fitted, inputs, callbacks)
        if fitted.stop_training and np.isnan(fitted.history.history.get("loss", [0])[-1]):
            raise FloatingPointError(
                "Training produced a NaN loss and was stopped; the last good checkpoint is in "
                f"{self.directory.best_checkpoint.parent}. Try a lower `train.learning_rate` "
                "or `precision.policy: float32`."
            )
        return summary

    def _fit_guarded(self, fitted: keras.Model, inputs: TrainingInputs, callbacks) -> None:
        """`model.fit`, with a lost peer, a full disk and a SIGTERM told as what they are."""
        kept = ("every complete checkpoint and backup is intact, and running the command "
                "again resumes from the newest")
        fit_kwargs = self.parallelism.fit_kwargs(inputs.fit_kwargs, inputs.examples_per_epoch,
                                                 self.config.train.batch_size)
        # A SIGTERM backs up at the next step (strategies without a backup die of it at once).
        backup = next((c for c in callbacks if isinstance(c, KeptBackupAndRestore)), None)
        with peers_watched(self.role, self.shared.backup_dir), disk_guard(
                self.shared.path, "the epoch's checkpoints and backup", checkpoint_bytes(fitted),
                kept), self.parallelism.fit_scope(), (
                backup.sigterm_noted() if backup else contextlib.nullcontext()):
            fitted.fit(**fit_kwargs, epochs=self.config.train.epochs,
                       callbacks=callbacks, verbose=fit_verbosity())

    def fit_timed(self, fitted, data, inputs: TrainingInputs, timings: PhaseTimings,
                  extra_callbacks=None):
        """`fit`, its wall time split into the training steps and the per-epoch overhead
        (validation, checkpoints, the backup, TensorBoard)."""
        start = time.perf_counter()
        summary = self.fit(fitted, data, inputs, extra_callbacks)
        steps = sum(summary.train_seconds)
        timings.add("fit_steps", steps)
        timings.add("fit_overhead", time.perf_counter() - start - steps)
        return summary

    def best_model(self, model: keras.Model, fitted: keras.Model) -> keras.Model:
        """The served model with the best checkpoint's weights."""
        # BackupAndRestore empties its directory when training ends; drop the husk too.
        shutil.rmtree(self.directory.backup_dir, ignore_errors=True)
        if self.role.trains_on_a_cluster or self.parallelism.serves_a_copy:
            # Evaluate on an ordinary local copy: the cluster model's predict would need every
            # worker, and sharded or placed weights are gathered by loading the checkpoint.
            return load_trained(self.directory.path).model
        fitted.load_weights(str(self.directory.best_checkpoint)).expect_partial()
        return model

    def finish(self, model, fitted, preprocessor, data, inputs: TrainingInputs, summary,
               export: bool, timings: PhaseTimings) -> TrainingResult:
        """Best weights, evaluation, the export, the training curves, then metrics.json (with
        the phase timings and peak memory) and the headline. The work that needs no
        TensorFlow (the baseline, the figures) runs in a side process meanwhile."""
        run = self.directory
        with timings.phase("best_weights"):
            model = self.best_model(model, fitted)
        with SideProcess() as side:
            with timings.phase("evaluation"):
                metrics = self.task.evaluate(model, preprocessor, data, run, side)
            with timings.phase("plots"):
                if (run.path / "history.csv").is_file():
                    side.submit(plot_training_curves, run.path / "history.csv",
                                run.path / "training_curves.png")
            metrics["train"] = self.train_report(fitted, summary, inputs)
            export_path = None
            if export:
                with timings.phase("export"):
                    export_path = publish_run(self.task, model, preprocessor, self.config,
                                              self.task.sample_texts(data, MAX_WARMUP_TEXTS))
                metrics["export"] = {"path": str(export_path)}
            with timings.phase("side_process_wait"):
                metrics = side.resolved(metrics)
        if self.warm_start is not None:
            metrics["init_from"] = self.warm_start
        metrics["timings"] = timings.to_dict()
        metrics["memory"] = {"peak_rss_mb": peak_rss_mb()}
        run.write_json("metrics.json", metrics)
        logger.info("%s", timings.summary())
        logger.info("%s", self.task.headline(metrics))
        return TrainingResult(model, metrics, run.path, export_path)

    def train_report(self, fitted: keras.Model, summary, inputs: TrainingInputs) -> dict:
        """metrics.json's `train` section: throughput, epochs, strategy, precision, inputs."""
        return {
            **self.task.train_metrics(summary, inputs),
            "epochs_run": len(summary.train_seconds),
            "train_seconds": sum(summary.train_seconds),
            "replicas": self.strategy.num_replicas_in_sync,
            "strategy": self.role.kind,
            "precision_policy": self.policy,
            "parallelism": self.parallelism.report(fitted),
            **inputs.report,
        }


def train_pipeline(
    config: PipelineConfig,
    run_dir: str | Path,
    *,
    export: bool = True,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainingResult:
    """Trains, evaluates and (optionally) exports one pipeline of any task; resumes an
    interrupted run from its backup.

    Args:
        config: the validated pipeline.
        run_dir: where the config, vocabulary, checkpoints, logs, metrics and plots go: a
            local path, or a `gs://`, `s3://`, `hdfs://` or `ram://` URL (worked on through
            a local copy, `tfnlp.training.remote_run`).
        export: publish the best model under `export.dir` when training ends.
        extra_callbacks: more Keras callbacks for `model.fit`.

    Returns:
        The served model (best weights), the metrics written to `metrics.json`, the run
        directory and the export path. A non-chief worker returns empty metrics.

    Raises:
        PreflightError: the strategy, directories or disk cannot run this pipeline.
        RunDirectoryInUse: another live tfnlp command holds `run_dir`.
        ResumeError: the backup is damaged, none is intact, and `train.resume` is strict.
        DiskFullError: the disk filled while writing checkpoints (or the export).
        FloatingPointError: the loss became NaN (the last good checkpoint is kept).
        Preempted: a SIGTERM during training; the backup holds the step it came at.
        WorkerLost: a peer in the cluster stopped answering.
    """
    if is_remote(run_dir):
        return _train_mirrored(config, str(run_dir), export, extra_callbacks)
    timings = PhaseTimings()
    with timings.phase("startup"):
        run = Run.start(config, run_dir)
    kept = "what the run wrote before is intact"
    with run, disk_guard(run.directory.path, "the run's files", run_disk_bytes(config), kept):
        with timings.phase("data"):
            data = run.task.read_data()
            run.task.record_data(data, run.directory)
        if config.pretrain is not None:
            with timings.phase("pretrain"):
                run.use_pretrained(pretrain_language_model(
                    run.config, run.task.training_texts, run.shared.path / PRETRAIN_DIR,
                    train_pipeline))
        with timings.phase("vocabulary"):
            preprocessor = prepare_preprocessor(run.task, data, run.directory)
        with timings.phase("model"):
            model, fitted = run.build(preprocessor)
        with timings.phase("input_pipeline"):
            inputs = run.task.training_inputs(data, preprocessor, run.strategy, run.role)
        summary = run.fit_timed(fitted, data, inputs, timings, extra_callbacks)
        if not run.role.is_chief:
            finish_worker(run.role, run.directory.path, run.shared.backup_dir)
            return TrainingResult(model, {}, run.directory.path, None)
        return run.finish(model, fitted, preprocessor, data, inputs, summary, export, timings)


def _train_mirrored(config: PipelineConfig, run_dir: str, export: bool,
                    extra_callbacks) -> TrainingResult:
    """`train_pipeline` on a local copy of a remote run directory (`remote_run`), uploaded
    after every epoch and when training ends, however it ends."""
    role = "writer" if is_chief_task() else "worker"
    with RunMirror(run_dir, "train", role) as mirror:
        result = train_pipeline(config, mirror.local, export=export,
                                extra_callbacks=[*(extra_callbacks or []), mirror.callback()])
    return dataclasses.replace(result, run_dir=run_dir)
