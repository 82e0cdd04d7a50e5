"""A finished run read back, for any task: its model, evaluation and export.

`load_trained` rebuilds the preprocessing and model from the run directory alone and loads
the best checkpoint; `evaluate_run` and `export_run` (and `tfnlp compress`) build on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tfnlp.backend import keras
from tfnlp.config.schema import PipelineConfig
from tfnlp.export.module import publish
from tfnlp.export.warmup import MAX_WARMUP_TEXTS
from tfnlp.tasks import Task, get_task
from tfnlp.training.precision import precision_scope, resolve_policy
from tfnlp.training.resume import checkpoint_problem, first_line
from tfnlp.training.run_directory import CheckpointMismatch, RunDirectory
from tfnlp.training.run_lock import locked

logger = logging.getLogger("tfnlp")


@dataclass
class TrainedRun:
    """A finished run read back: its task, the served model with the best weights, and its
    preprocessing layer."""

    task: Task
    model: keras.Model
    preprocessor: keras.layers.Layer
    config: PipelineConfig
    directory: RunDirectory


def publish_run(task: Task, model, preprocessor, config: PipelineConfig,
                 warmup_texts: list[str] | None, export_dir=None, name=None,
                 version=None) -> Path:
    """Publishes the task's serving module with the pipeline's `export:` settings."""
    path = publish(
        task.serving_module(model, preprocessor), export_dir or config.export.dir,
        name or config.export.name or config.name,
        version=version if version is not None else config.export.version,
        keep=config.export.keep, warmup_texts=warmup_texts, labels=config.export.labels,
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
    load_best_weights(fitted, run, config)
    return TrainedRun(task, model, preprocessor, config, run)


def load_best_weights(fitted: keras.Model, run: RunDirectory, config: PipelineConfig) -> None:
    """Loads the best checkpoint into `fitted`, refusing one that is damaged or foreign.

    Raises:
        CheckpointMismatch: the checkpoint was trained for another model or vocabulary.
        CheckpointDamaged: its files are truncated or corrupted.
    """
    run.check_checkpoint_identity(config)
    prefix = run.best_checkpoint
    # `load_weights` skips some CRC checks and tensors it does not restore: read all first.
    problem = checkpoint_problem(prefix)
    if problem:
        raise CheckpointDamaged(
            f"{prefix}: damaged ({problem}). Train the pipeline again; "
            f"{prefix.parent / 'latest'} holds the last epoch's weights if it is intact.")
    status = None
    try:
        status = fitted.load_weights(str(prefix))
        # Every weight of the model must come from the checkpoint (optimizer slots may not).
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise CheckpointMismatch(
            f"{prefix}: does not fit the model {run.config_file} builds "
            f"({first_line(error)}); was it copied from another run? Train the pipeline "
            "again, or copy the whole run directory.") from None
    finally:
        if status is not None:
            status.expect_partial()  # the optimizer's slots are not wanted here


class CheckpointDamaged(OSError):
    """A checkpoint's files are truncated or corrupted."""





def evaluate_run(run_dir: str | Path) -> dict:
    """Re-evaluates a run's best checkpoint on its (re-created, identical) splits.

    Writes `evaluation.json` in the run directory and returns it.
    """
    with locked(command="evaluate", reading=(run_dir,)):
        trained = load_trained(run_dir)
        data = trained.task.read_data()
        metrics = trained.task.evaluate(trained.model, trained.preprocessor, data,
                                        trained.directory)
        trained.directory.write_json("evaluation.json", metrics)
    return metrics


def export_run(run_dir: str | Path, export_dir: str | None = None, name: str | None = None,
               version: int | str | None = None) -> Path:
    """Publishes a run's best checkpoint as the next (or given) version, for any task.

    The warm-up requests come from the re-created validation split; when the data can no
    longer be read, the export has none (with a warning).
    """
    # Not while `tfnlp train` rewrites the checkpoints; other readers may run alongside.
    with locked(command="export", reading=(run_dir,)):
        trained = load_trained(run_dir)
        return publish_run(trained.task, trained.model, trained.preprocessor, trained.config,
                           _warmup_texts(trained.task), export_dir, name, version)


def _warmup_texts(task: Task) -> list[str] | None:
    try:
        return task.sample_texts(task.read_data(), MAX_WARMUP_TEXTS)
    except (OSError, ValueError) as error:
        logger.warning("no warm-up requests: cannot read the data again (%s)", error)
        return None
