"""Resume only from an intact backup: verify it, fall back to the one before, or refuse.

A machine that crashes (not only the process) can leave the newest backup truncated or with
flipped bits: the files were renamed into place before the page cache reached the disk.
Keras would fail deep inside `restore` or, worse, resume from garbage. So before `fit`, every
tensor of the newest backup is read back (TensorFlow checks each one's CRC32C); a damaged
backup is moved aside to `backup-damaged/` with a warning naming it, and the one before it is
used. `KeptBackupAndRestore` keeps two, so there is one before it.

With none intact, `train.resume: strict` (the default) refuses with the fix, and
`train.resume: auto` moves the damaged backup aside and starts fresh.

Preemption: a SIGTERM during `fit` (a scheduler reclaiming the machine) no longer ends the
process at once. The training step under way finishes, a backup records that epoch and step,
and `Preempted` ends the run (exit 143, see `tfnlp.exit_codes`); the same command resumes at
the next step. Keras's `BackupAndRestore` resumes mid-epoch only with an integer `save_freq`
or its GCP-only preemption mode; here a backup's step is -1 at an epoch's end and the step
number mid-epoch, and `resume_point` turns that into where `fit` starts again. Under
`MultiWorkerMirroredStrategy` every worker has to take part in a save (SyncOnRead variables
are all-reduced), so TensorFlow's `PreemptionCheckpointHandler` agrees on the step through
the cluster's coordination service and every worker saves there, then stops.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import signal
import threading
import time
from pathlib import Path

# Where a non-chief worker writes its share of a backup (tf-keras has no public name for it).
from tf_keras.src.distribute.distributed_file_utils import remove_temp_dirpath

from tfnlp.backend import keras, tf

logger = logging.getLogger("tfnlp")

BACKUPS_KEPT = 2
_CHECKPOINT_INDEX = re.compile(r"\Ackpt-(\d+)\.index\Z")


class ResumeError(RuntimeError):
    """No intact backup to resume from, and `train.resume` does not allow a fresh start."""


class Preempted(RuntimeError):
    """SIGTERM during training: the backup holds the last finished step; rerun to resume."""


END_OF_EPOCH = -1  # the step a backup written at an epoch's end records


def resume_point(epoch: int, step: int, steps_per_epoch: int | None) -> tuple[int, int]:
    """Where `fit` starts again after a backup written at (`epoch`, `step`), both 0-based.

    Args:
        epoch: the backup's epoch.
        step: the last step the backup includes, or `END_OF_EPOCH`.
        steps_per_epoch: steps in one epoch, or None when the dataset does not say.

    Returns:
        (epoch, step) to start at: the next step, or the next epoch's first step after an
        epoch's last one. With `steps_per_epoch` unknown, the interrupted epoch runs again in
        full (Keras counts an epoch of unknown length from the step it starts at, so starting
        mid-way would make it count the whole pass as longer and stop later epochs short).

    Example:
        >>> resume_point(1, END_OF_EPOCH, 19), resume_point(1, 6, 19), resume_point(1, 18, 19)
        ((2, 0), (1, 7), (2, 0))
        >>> resume_point(1, 6, None)
        (1, 0)
    """
    if step == END_OF_EPOCH or (steps_per_epoch is not None and step + 1 >= steps_per_epoch):
        return epoch + 1, 0
    if steps_per_epoch is None:
        return epoch, 0
    return epoch, step + 1


class KeptBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that keeps two backups, backs up on SIGTERM, and resumes mid-epoch.

    tf-keras fixes its managers' `max_to_keep` at 1 (`worker_training_state`); a second kept
    backup costs one more copy of the weights and optimizer state on disk.

    While `sigterm_noted` is entered, a SIGTERM only sets a flag. At the next step's end the
    backup is written with that epoch and step, and `Preempted` is raised. A SIGTERM during an
    epoch's validation or checkpoints stops at the next epoch's start instead (that epoch's
    backup is complete), and one after the last epoch keeps its backup, so the rerun goes
    straight on to evaluation. Under multi-worker mirrored TensorFlow's
    `PreemptionCheckpointHandler` takes the signal (see the module docstring).
    """

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir)
        self._sigterm_received = False
        self._epoch_backed_up = False  # this process wrote an epoch's backup
        self._handler = None  # the PreemptionCheckpointHandler, under multi-worker mirrored

    @contextlib.contextmanager
    def sigterm_noted(self):
        """Turns SIGTERM into a flag for the block (the main thread only), then puts the
        previous handler back, however the block ends."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGTERM, self._note_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _note_sigterm(self, signum, frame):
        self._sigterm_received = True

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        state = self._training_state
        for manager in (state.read_checkpoint_manager, state.write_checkpoint_manager):
            manager._max_to_keep = BACKUPS_KEPT
        # tf-keras offers no hook for where to resume; the model calls this one.
        state.maybe_load_initial_counters_from_ckpt = self._initial_counters
        if isinstance(self.model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            self._handler = _cluster_preemption_handler(state, self.model.distribute_strategy,
                                                        self._stop_preempted)
            # On GCP the handler watches the platform's notices instead (GPU VMs) or nothing
            # (CPU VMs), and leaves SIGTERM to `sigterm_noted`; elsewhere it takes it over.
            if signal.getsignal(signal.SIGTERM) == self._handler._sigterm_handler_fn:
                if self._sigterm_received:  # before the handler took the signal over
                    self._handler._maybe_set_received_own_sigterm()
                self._sigterm_received = False

    def _initial_counters(self, steps_per_epoch, initial_epoch, mode):
        epoch, step = self._saved_position()
        if mode != "train" or epoch < 0:  # no backup restored
            return initial_epoch, 0
        start = resume_point(epoch, step, steps_per_epoch)
        if step != END_OF_EPOCH and start[1] > 0:
            logger.info("resuming at epoch %d, step %d of %d (backed up after step %d)",
                        start[0] + 1, start[1] + 1, steps_per_epoch, step + 1)
        elif step != END_OF_EPOCH and start[0] == epoch:
            logger.warning("resuming at the start of epoch %d: the backup was written after "
                           "its step %d, and the number of steps per epoch is unknown",
                           epoch + 1, step + 1)
        return start

    def _saved_position(self) -> tuple[int, int]:
        state = self._training_state
        return int(state._ckpt_saved_epoch.numpy()), int(state._ckpt_saved_batch.numpy())

    def _implements_train_batch_hooks(self):
        return True  # the SIGTERM check

    def on_epoch_begin(self, epoch, logs=None):
        if self._sigterm_received and self._handler is None and self._epoch_backed_up:
            self._stop_preempted()  # the epoch before is backed up, its checkpoints written
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if self._handler is not None and self._sigterm_received:
            # A SIGTERM TensorFlow's handler did not take: this worker cannot save alone.
            raise Preempted(
                f"{self.backup_dir}: stopped by SIGTERM (preemption) at epoch "
                f"{self._current_epoch + 1}, step {batch + 1}, without a backup of that step "
                "(in a cluster every worker must take part, and TensorFlow's preemption "
                "handler does not watch SIGTERM on this platform); the same command resumes "
                "from the last epoch's backup.")
        if self._handler is not None:
            # Every worker calls this once a step; the handler saves and calls
            # `_stop_preempted` at the step the cluster agreed on.
            self._training_state._ckpt_saved_batch.assign(batch)
            # AlreadyExists: a SIGTERM as a peer finished training (the peer closed the watch).
            with contextlib.suppress(tf.errors.AlreadyExistsError):
                self._handler.save_checkpoint_if_preempted()
        elif self._sigterm_received:
            self._backup(epoch=self._current_epoch, batch=batch)
            self._stop_preempted()

    def _backup(self, epoch, batch=END_OF_EPOCH):
        state = self._training_state
        state._ckpt_saved_epoch.assign(epoch)
        state._ckpt_saved_batch.assign(batch)
        super()._backup(epoch=epoch, batch=batch)
        self._epoch_backed_up = batch == END_OF_EPOCH

    def _stop_preempted(self):
        """Raises `Preempted`, naming what the backup holds (it is complete on disk)."""
        epoch, step = self._saved_position()
        # A non-chief worker wrote its share of the save to a temporary directory.
        remove_temp_dirpath(self._training_state.write_checkpoint_manager.directory,
                            self.model.distribute_strategy)
        steps = self.params.get("steps")
        where = f"epoch {epoch + 1}" + (
            "" if step == END_OF_EPOCH else f", step {step + 1}{f' of {steps}' if steps else ''}")
        next_epoch, next_step = resume_point(epoch, step, steps)
        then = (f"epoch {next_epoch + 1}" + (f", step {next_step + 1}" if next_step else "")
                if next_epoch < self.params.get("epochs", next_epoch + 1)
                else "evaluation and export")
        logger.warning("SIGTERM: the backup in %s holds %s; stopping", self.backup_dir, where)
        raise Preempted(f"{self.backup_dir}: stopped by SIGTERM (preemption) after {where}, "
                        f"which the backup holds; the same command resumes at {then}.")

    def on_train_end(self, logs=None):
        if isinstance(self.model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # The chief deletes the whole backup directory below, a non-chief's temporary
            # share included: a slower worker could still be writing its last epoch's.
            _wait_for_every_worker(self.model.distribute_strategy)
        if self._handler is not None:
            # Every worker got here, so every one can answer the watcher's shutdown.
            self._handler._stop_poll_termination_signal_thread()
            self._handler._stop_cluster_wise_termination_watcher_thread()
        elif self._sigterm_received and self._epoch_backed_up and not self.model.stop_training:
            self._stop_preempted()  # after the last epoch: keep its backup
        super().on_train_end(logs)


def _wait_for_every_worker(strategy) -> None:
    """Returns once every worker has called it: an all-reduce of one number."""
    ones = strategy.run(lambda: tf.constant(1.0))
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)


def _cluster_preemption_handler(state, strategy, exit_preempted):
    """TensorFlow's `PreemptionCheckpointHandler` on the backup's managers: on a SIGTERM to
    any worker, every worker saves at the same step, then `exit_preempted` runs."""
    # The handler restores from the manager it is given, for a non-chief its temporary
    # directory: a stale one must not win over the chief's backup restored already.
    remove_temp_dirpath(state.write_checkpoint_manager.directory, strategy)
    handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, state.write_checkpoint_manager,
        termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=exit_preempted))
    # The workers agree on the step by a counter that only has to match between them.
    handler._run_counter = 0
    return handler


def first_line(error: BaseException) -> str:
    """An error's first line (at most 300 characters), or its type when it has no text."""
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def checkpoint_problem(prefix: str | Path) -> str | None:
    """Why the checkpoint at `prefix` cannot be restored (None if every tensor reads back)."""
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)  # verifies the tensor's CRC32C
    except (tf.errors.OpError, ValueError, OSError, IndexError) as error:  # Index: short read
        return first_line(error)
    return None


def _backups_newest_first(chief_dir: Path) -> list[Path]:
    found = [(int(m.group(1)), chief_dir / f"ckpt-{m.group(1)}")
             for path in chief_dir.glob("ckpt-*.index")
             if (m := _CHECKPOINT_INDEX.match(path.name))]
    return [prefix for _, prefix in sorted(found, reverse=True)]


def _move_aside(prefix: Path, damaged_dir: Path) -> None:
    damaged_dir.mkdir(parents=True, exist_ok=True)
    for path in prefix.parent.glob(prefix.name + ".*"):
        path.rename(damaged_dir / path.name)


def prepare_resume(backup_dir: Path, resume: str) -> bool:
    """Makes `backup_dir` hold only intact backups, newest first in its state file.

    Args:
        backup_dir: the `BackupAndRestore` directory (its backups are in `chief/`).
        resume: `train.resume`: "strict" refuses to start fresh, "auto" may.

    Returns:
        True to resume from the backup; False to start fresh (no backup, or none intact
        and `resume: auto`).

    Raises:
        ResumeError: backups exist, none is intact, and `resume` is "strict".
    """
    chief_dir = backup_dir / "chief"
    damaged_dir = backup_dir.parent / "backup-damaged"
    backups = _backups_newest_first(chief_dir)
    intact = []
    for prefix in backups:
        problem = checkpoint_problem(prefix)
        if problem is None:
            intact.append(prefix)
        elif not intact:  # only damage to the newest matters; older ones are replaced soon
            logger.warning("backup %s is damaged (%s): moved to %s; resuming from the one "
                           "before it, if intact", prefix, problem, damaged_dir)
            _move_aside(prefix, damaged_dir)
    if intact:
        # The state file may be the damaged part, or still name the moved backup: rewrite it.
        tf.compat.v1.train.update_checkpoint_state(
            str(chief_dir), str(intact[0]), [str(p) for p in reversed(intact)])
        return True
    if not backups and not (chief_dir / "checkpoint").exists():
        # No backup ever completed (the state file is written last): a kill during the first
        # one leaves only its temporary files, and no epoch was recorded to resume from.
        if backup_dir.exists():
            logger.warning("%s: the first backup was never completed (interrupted while "
                           "written); removed it and starting fresh", backup_dir)
            shutil.rmtree(backup_dir)
        return False
    where = backup_dir if not backups else f"{backup_dir} (damaged backups moved to {damaged_dir})"
    if resume != "auto":
        raise ResumeError(
            f"{where}: no intact backup to resume from. Set `train.resume: auto` (or "
            "`--set train.resume=auto`) to start this run fresh, or delete the backup.")
    aside = backup_dir.parent / f"backup-damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    backup_dir.rename(aside)
    logger.warning("%s: no intact backup; starting fresh (`train.resume: auto`); what was "
                   "left is kept in %s", backup_dir, aside)
    return False
