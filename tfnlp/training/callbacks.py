"""The callbacks a pipeline run trains with, and the per-epoch summary line."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from tfnlp.backend import keras
from tfnlp.training.resume import KeptBackupAndRestore
from tfnlp.training.vertex import tensorboard_dir

logger = logging.getLogger("tfnlp")


class EpochTimer(keras.callbacks.Callback):
    """Training seconds of each epoch, validation excluded (the first includes tracing)."""

    def __init__(self):
        super().__init__()
        self.train_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._test_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._test_seconds += time.perf_counter() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds.append(time.perf_counter() - self._start - self._test_seconds)

    @property
    def steady_epoch_seconds(self) -> float:
        """The fastest epoch after the first (graph tracing), or the only one."""
        later = self.train_seconds[1:] or self.train_seconds
        return min(later) if later else float("nan")


class EpochSummary(EpochTimer):
    """Logs one line per epoch and measures training throughput (validation time excluded).

    Args:
        examples_per_epoch: training examples in one epoch (for examples/s).
    """

    def __init__(self, examples_per_epoch: int):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        seconds = self.train_seconds[-1]
        values = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items())
        logger.info(
            "epoch %d/%d: %s (%.1f s, %.0f examples/s)", epoch + 1, self.params["epochs"],
            values, seconds, self.examples_per_epoch / max(seconds, 1e-9),
        )

    @property
    def examples_per_second(self) -> float | None:
        """Mean training throughput over the epochs run (the first includes tracing).

        None when no epoch ran in this process (a resumed run that was already finished):
        a 0 would read as a measurement.
        """
        if not self.train_seconds:
            return None
        return self.examples_per_epoch * len(self.train_seconds) / sum(self.train_seconds)


class StepLogger(keras.callbacks.Callback):
    """Logs a line after every training step (`TFNLP_LOG_STEPS=1`): for tests and debugging
    that must act at a given step, e.g. send a SIGTERM mid-epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logger.info("epoch %d step %d/%s done", self._epoch + 1, batch + 1,
                    self.params.get("steps") or "?")


# Strategies Keras's BackupAndRestore accepts (it refuses OneDevice and ParameterServer).
_BACKUP_STRATEGIES = ("_DefaultDistributionStrategy", "MirroredStrategy",
                      "MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy", "TPUStrategy")


def standard_callbacks(
    run_dir: Path, *, monitor: str, patience: int, examples_per_epoch: int,
    strategy_name: str = "_DefaultDistributionStrategy",
) -> tuple[list[keras.callbacks.Callback], EpochSummary]:
    """Checkpoint (best + latest), backup-and-restore, early stopping, TensorBoard, CSV log.

    Returns:
        (callbacks, the `EpochSummary` among them, for its throughput figures).
    """
    checkpoints = run_dir / "checkpoints"
    mode = "max" if "accuracy" in monitor else "min"
    summary = EpochSummary(examples_per_epoch)
    callbacks = []
    if strategy_name in _BACKUP_STRATEGIES:
        # Resumes an interrupted run at the epoch it reached (deleted when training ends).
        callbacks.append(KeptBackupAndRestore(str(run_dir / "backup")))
    else:
        logger.warning("%s cannot back up and restore: an interrupted run restarts from "
                       "scratch (use strategy auto/default/mirrored to resume)", strategy_name)
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            str(checkpoints / "best"), monitor=monitor, mode=mode, save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "latest"), save_weights_only=True),
        # No restore_best_weights: the run reloads checkpoints/best after `fit` anyway, and
        # its in-memory copy (`get_weights`) cannot read DTensor's sharded variables.
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(str(tensorboard_dir(run_dir / "logs")), profile_batch=0),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        summary,
    ]
    if os.environ.get("TFNLP_LOG_STEPS") == "1":
        callbacks.append(StepLogger())
    return callbacks, summary
