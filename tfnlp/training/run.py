"""The one run lifecycle every task trains through (after Model Garden's `train_lib`).

    start   strategy FIRST, this process's role, preflight, run directory, config, seeds,
            precision; non-chief workers write to a temporary directory
    train   data, vocabulary (learned or reused; a stale backup is discarded), the model built
            in `strategy.scope()`, `model.fit` with the standard callbacks, the NaN guard
    finish  best weights, evaluation, export, metrics.json, plots; workers clean up

The task (`tfnlp.tasks`) supplies only what differs between tasks. `load_trained`,
`evaluate_run` and `export_run` read a finished run back for any task.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnlp.backend import keras
from tfnlp.config.schema import PipelineConfig
from tfnlp.evaluation.plots import plot_training_curves
from tfnlp.export.module import publish
from tfnlp.tasks import Task, get_task
from tfnlp.training.callbacks import standard_callbacks
from tfnlp.training.distributed import distributed_settings, finish_worker, worker_callbacks
from tfnlp.training.precision import precision_scope, resolve_policy, with_loss_scaling
from tfnlp.training.preflight import PreflightError, run_preflight
from tfnlp.training.run_directory import RunDirectory
from tfnlp.training.strategy import create_strategy, fix_metric_reduction

logger = logging.getLogger("tfnlp")

# Validation texts recorded as the export's warm-up requests.
WARMUP_TEXTS = 8


@dataclass
class TrainingResult:
    model: keras.Model
    metrics: dict
    run_dir: Path
    export_path: Path | None


@dataclass
class TrainedRun:
    """A finished run read back: its task, the served model with the best weights, and its
    preprocessing layer."""

    task: Task
    model: keras.Model
    preprocessor: keras.layers.Layer
    config: PipelineConfig
    directory: RunDirectory


def compile_for_training(model: keras.Model, task: Task, config: PipelineConfig) -> None:
    """AdamW (loss-scaled under mixed_float16) with the task's loss and metrics.

    Called inside `precision_scope`: the global policy is the run's policy.
    """
    optimizer = keras.optimizers.AdamW(
        learning_rate=config.train.learning_rate, weight_decay=config.train.weight_decay
    )
    policy = keras.mixed_precision.global_policy().name
    model.compile(optimizer=with_loss_scaling(optimizer, policy), loss=task.loss(),
                  metrics=task.metrics())


def prepare_preprocessor(task: Task, data, run: RunDirectory):
    """The task's preprocessing layer: the run's stored vocabulary when it was learned from the
    same texts and settings, else learned now (and an interrupted run's backup discarded,
    since its embeddings index the old vocabulary)."""
    key = task.vocabulary_key(data)
    vocabulary = run.read_vocabulary(key)
    if vocabulary is not None:
        logger.info("vocabulary: reusing %s (%d tokens)", run.vocabulary_file, len(vocabulary))
        return task.preprocessor_from(vocabulary)
    if run.has_backup:
        logger.warning("data or preprocessing changed: discarding the backup in %s",
                       run.backup_dir)
        shutil.rmtree(run.backup_dir)
    start = time.perf_counter()
    layer = task.learn_preprocessor(data)
    run.write_vocabulary(list(layer.vocabulary), key)
    logger.info("vocabulary: learned %d tokens in %.1f s", layer.vocabulary_size,
                time.perf_counter() - start)
    return layer


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
        run_dir: where the config, vocabulary, checkpoints, logs, metrics and plots go.
        export: publish the best model under `export.dir` when training ends.
        extra_callbacks: more Keras callbacks for `model.fit`.

    Returns:
        The served model (best weights), the metrics written to `metrics.json`, the run
        directory and the export path. A non-chief worker returns empty metrics.

    Raises:
        PreflightError: the strategy, directories or disk cannot run this pipeline.
        FloatingPointError: the loss became NaN (the last good checkpoint is kept).
    """
    # First: multi-worker strategies must exist before TensorFlow runs any op.
    strategy, why = create_strategy(config.distribute)
    logger.info("strategy: %s (%s)", type(strategy).__name__, why)
    config, role = distributed_settings(config, strategy)
    task = get_task(config)
    if role.kind in task.unsupported_strategies:
        raise PreflightError(task.unsupported_strategies[role.kind])
    # Non-chief workers write to a temporary directory (removed at the end); callbacks get
    # the shared one, where Keras itself separates the workers' checkpoints and backups.
    shared = RunDirectory(Path(run_dir))
    run_preflight(config, role.write_dir(shared.path))
    run = RunDirectory(role.write_dir(shared.path)).create()
    run.write_config(config)
    keras.utils.set_random_seed(config.seed)
    data = task.read_data()
    task.record_data(data, run)
    policy, why = resolve_policy(config.precision.policy)
    logger.info("precision: %s (%s)", policy, why)

    preprocessor = prepare_preprocessor(task, data, run)
    with strategy.scope(), precision_scope(policy):
        model = task.build_model(preprocessor)
        fitted = task.trainable_model(model)
        compile_for_training(fitted, task, config)
        fix_metric_reduction(fitted, strategy)
    inputs = task.training_inputs(data, preprocessor, strategy, role)
    callbacks, summary = _callbacks(task, data, config, run, shared, inputs,
                                    type(strategy).__name__, extra_callbacks)
    _fit(fitted, config, run, shared, role, inputs, callbacks)
    if not role.is_chief:
        finish_worker(role, run.path, shared.backup_dir)
        return TrainingResult(model, {}, run.path, None)
    # BackupAndRestore empties its directory when training ends; drop the husk too.
    shutil.rmtree(run.backup_dir, ignore_errors=True)
    if role.trains_on_a_cluster:
        # Evaluate on a local copy: the cluster model's predict would need every worker.
        model = load_trained(run.path).model
    else:
        fitted.load_weights(str(run.best_checkpoint)).expect_partial()

    metrics = task.evaluate(model, preprocessor, data, run)
    metrics["train"] = {
        **task.train_metrics(summary, inputs),
        "epochs_run": len(summary.train_seconds),
        "train_seconds": sum(summary.train_seconds),
        "replicas": strategy.num_replicas_in_sync,
        "strategy": role.kind,
        "precision_policy": policy,
        **inputs.report,
    }
    export_path = None
    if export:
        export_path = _publish_run(task, model, preprocessor, config,
                                   task.sample_texts(data, WARMUP_TEXTS))
        metrics["export"] = {"path": str(export_path)}
    run.write_json("metrics.json", metrics)
    if (run.path / "history.csv").is_file():
        plot_training_curves(run.path / "history.csv", run.path / "training_curves.png")
    logger.info("%s", task.headline(metrics))
    return TrainingResult(model, metrics, run.path, export_path)


def _fit(fitted, config: PipelineConfig, run: RunDirectory, shared: RunDirectory, role,
         inputs, callbacks: list) -> None:
    """`model.fit` on the task's inputs, resuming from a backup; the NaN guard after it."""
    callbacks = worker_callbacks(callbacks, role, run.path)
    if shared.has_backup:
        logger.info("resuming from the backup in %s", shared.backup_dir)
    else:
        # A fresh start: the epoch log must not continue an earlier run's.
        (run.path / "history.csv").unlink(missing_ok=True)
    fitted.fit(**inputs.fit_kwargs, epochs=config.train.epochs, callbacks=callbacks,
               verbose=1 if sys.stdout.isatty() else 2)
    if fitted.stop_training and np.isnan(fitted.history.history.get("loss", [0])[-1]):
        raise FloatingPointError(
            "Training produced a NaN loss and was stopped; the last good checkpoint is in "
            f"{run.best_checkpoint.parent}. Try a lower `train.learning_rate` or "
            "`precision.policy: float32`."
        )


def _callbacks(task: Task, data, config: PipelineConfig, run: RunDirectory,
               shared: RunDirectory, inputs, strategy_name: str, extra_callbacks):
    """The standard callbacks (on the shared directory), the task's and the caller's."""
    callbacks, summary = standard_callbacks(
        shared.path, monitor=task.monitor(data), patience=config.train.early_stopping_patience,
        examples_per_epoch=inputs.examples_per_epoch, strategy_name=strategy_name,
    )
    callbacks += task.callbacks(run, fresh_start=not shared.has_backup)
    return callbacks + list(extra_callbacks or []), summary


def _publish_run(task: Task, model, preprocessor, config: PipelineConfig,
                 warmup_texts: list[str] | None, export_dir=None, name=None,
                 version=None) -> Path:
    """Publishes the task's serving module with the pipeline's `export:` settings."""
    path = publish(
        task.serving_module(model, preprocessor), export_dir or config.export.dir,
        name or config.export.name or config.name,
        version=version if version is not None else config.export.version,
        keep=config.export.keep, warmup_texts=warmup_texts,
    )
    logger.info("exported: %s", path)
    return path


def load_trained(run_dir: str | Path) -> TrainedRun:
    """Rebuilds a finished run's preprocessing and model and loads the best checkpoint.

    Reads the run directory only; works for every task.

    Raises:
        FileNotFoundError: `run_dir` is not a finished run directory.
    """
    run = RunDirectory(Path(run_dir))
    config = run.read_config()
    task = get_task(config)
    vocabulary = run.read_vocabulary()
    if vocabulary is None:
        raise FileNotFoundError(f"{run.path}: the vocabulary is missing; train the pipeline again.")
    if not run.best_checkpoint.with_suffix(".index").is_file():
        raise FileNotFoundError(
            f"{run.best_checkpoint}: no best checkpoint yet; let `tfnlp train` finish an epoch."
        )
    task.restore(run)
    preprocessor = task.preprocessor_from(vocabulary)
    with precision_scope(resolve_policy(config.precision.policy)[0]):
        model = task.build_model(preprocessor)
        # Checkpoints hold what was fitted (e.g. the ids model when tokenizing in the dataset).
        fitted = task.trainable_model(model)
    fitted.load_weights(str(run.best_checkpoint)).expect_partial()
    return TrainedRun(task, model, preprocessor, config, run)


def evaluate_run(run_dir: str | Path) -> dict:
    """Re-evaluates a run's best checkpoint on its (re-created, identical) splits.

    Writes `evaluation.json` in the run directory and returns it.
    """
    trained = load_trained(run_dir)
    data = trained.task.read_data()
    metrics = trained.task.evaluate(trained.model, trained.preprocessor, data, trained.directory)
    trained.directory.write_json("evaluation.json", metrics)
    return metrics


def export_run(run_dir: str | Path, export_dir: str | None = None, name: str | None = None,
               version: int | str | None = None) -> Path:
    """Publishes a run's best checkpoint as the next (or given) version, for any task.

    The warm-up requests come from the re-created validation split; when the data can no
    longer be read, the export has none (with a warning).
    """
    trained = load_trained(run_dir)
    return _publish_run(trained.task, trained.model, trained.preprocessor, trained.config,
                        _warmup_texts(trained.task), export_dir, name, version)


def _warmup_texts(task: Task) -> list[str] | None:
    try:
        return task.sample_texts(task.read_data(), WARMUP_TEXTS)
    except (OSError, ValueError) as error:
        logger.warning("no warm-up requests: cannot read the data again (%s)", error)
        return None
