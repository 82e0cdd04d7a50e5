"""What a pipeline run does differently under a distribution strategy.

Kept out of run.py so that the single-device path reads top to bottom: the run calls
`distributed_settings` once after creating the strategy, `worker_callbacks` for the callbacks,
and `finish_worker` on non-chief workers. Each task builds its own strategy-aware inputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import shutil
from pathlib import Path

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.training.strategy import (
    TaskRole,
    per_replica_batch_size,
    scaled_learning_rate,
    task_role,
)

logger = logging.getLogger("tfnlp")


def distributed_settings(
    config: PipelineConfig, strategy: tf.distribute.Strategy
) -> tuple[PipelineConfig, TaskRole]:
    """Logs the batch split, applies learning-rate scaling and finds this process's role.

    Returns:
        (the config with the learning rate the optimizer should use, this task's role).
    """
    if config.distribute.strategy == "dtensor":
        return dtensor_settings(config), TaskRole("dtensor", True, "local")
    role = task_role(strategy)
    replicas = strategy.num_replicas_in_sync
    per_replica = per_replica_batch_size(
        config.train.batch_size, replicas, strict=role.kind == "tpu"
    )
    logger.info(
        "batch: global %d = %d replica(s) x %d per replica%s (%s, %s)", config.train.batch_size,
        replicas, per_replica, "" if config.train.batch_size % replicas == 0 else ", uneven",
        role.kind, role.task,
    )
    rate = scaled_learning_rate(
        config.train.learning_rate, replicas, config.distribute.scale_learning_rate
    )
    if rate != config.train.learning_rate:
        logger.info("learning rate: %g x %d replicas = %g (distribute.scale_learning_rate)",
                    config.train.learning_rate, replicas, rate)
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, learning_rate=rate)
        )
    return config, role


def dtensor_settings(config: PipelineConfig) -> PipelineConfig:
    """Tokenizing moves into the dataset under DTensor: the mesh shards numbers, not the
    preprocessing layer's string ops (the served model still takes raw strings)."""
    mesh = config.distribute.mesh
    logger.info("batch: global %d = %d mesh row(s) x %d (dtensor, model axis %d)",
                config.train.batch_size, mesh.batch, config.train.batch_size // mesh.batch,
                mesh.model)
    if config.task == "classification" and not config.preprocessing.in_dataset:
        logger.info("dtensor: tokenizing in the dataset (preprocessing.in_dataset)")
        config = dataclasses.replace(config, preprocessing=dataclasses.replace(
            config.preprocessing, in_dataset=True))
    return config


def worker_callbacks(
    callbacks: list[keras.callbacks.Callback], role: TaskRole, write_dir: Path
) -> list[keras.callbacks.Callback]:
    """Adapts the standard callbacks to this task: a non-chief's CSV log goes to its temp dir.

    Keras's checkpoint, backup and TensorBoard callbacks already send a non-chief worker's
    files to `workertemp_<id>` directories; the CSV logger does not, so two workers would
    append to one history.csv.
    """
    if role.kind == "parameter_server":
        # The coordinator's per-batch logs are unfetched RemoteValues; TerminateOnNaN reads
        # them as a dict. A NaN still shows in the epoch's loss.
        callbacks = [c for c in callbacks if not isinstance(c, keras.callbacks.TerminateOnNaN)]
    if role.is_chief:
        return callbacks
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.CSVLogger):
            callback.filename = str(write_dir / Path(callback.filename).name)
    return callbacks


def finish_worker(role: TaskRole, write_dir: Path, backup_dir: Path) -> None:
    """Removes a non-chief worker's temporary directories once training has ended.

    Keras keeps a non-chief's backup in `<backup_dir>/workertemp_<id>`; when that is removed
    after the chief has already dropped `backup_dir`, the directory is left behind empty.
    """
    shutil.rmtree(write_dir, ignore_errors=True)
    shutil.rmtree(role.write_dir(backup_dir), ignore_errors=True)
    with contextlib.suppress(OSError):
        backup_dir.rmdir()  # only when empty: the chief may still be writing to it
    logger.info("%s: done; the chief writes the checkpoint, export and metrics", role.task)


class WorkerLost(RuntimeError):
    """A peer in the cluster stopped answering; the message names it and how to resume."""


# TensorFlow names the peer in its coordination service's and collectives' errors.
_PEER = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")
_LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
         tf.errors.CancelledError, tf.errors.AbortedError)


@contextlib.contextmanager
def peers_watched(role: TaskRole, backup_dir: Path):
    """Turns a collective aborted for a missing peer into a `WorkerLost` naming that peer.

    The coordination service aborts every collective once a task's heartbeats stop for
    `distribute.heartbeat_timeout_seconds`; `distribute.all_reduce.timeout_seconds` bounds one
    collective.
    Either way the error arrives here instead of a hang.
    """
    try:
        yield
    except _LOST as error:
        if not role.trains_on_a_cluster:
            raise
        peers = [f"{m.group(1)} {m.group(2)} ({m.group(0)})" for m in _PEER.finditer(str(error))
                 if f"{m.group(1)} {m.group(2)}" != role.task]
        who = peers[0] if peers else "a peer"
        raise WorkerLost(
            f"{who} stopped answering ({type(error).__name__}); this task gave up instead of "
            f"waiting. Relaunch the cluster: it resumes from the backup in {backup_dir}."
        ) from error
