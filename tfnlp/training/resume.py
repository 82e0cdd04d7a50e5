"""Resume only from an intact backup: verify it, fall back to the one before, or refuse.

A machine that crashes (not only the process) can leave the newest backup truncated or with
flipped bits: the files were renamed into place before the page cache reached the disk.
Keras would fail deep inside `restore` or, worse, resume from garbage. So before `fit`, every
tensor of the newest backup is read back (TensorFlow checks each one's CRC32C); a damaged
backup is moved aside to `backup-damaged/` with a warning naming it, and the one before it is
used. `KeptBackupAndRestore` keeps two, so there is one before it.

With none intact, `train.resume: strict` (the default) refuses with the fix, and
`train.resume: auto` moves the damaged backup aside and starts fresh.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from tfnlp.backend import keras, tf

logger = logging.getLogger("tfnlp")

BACKUPS_KEPT = 2
_CHECKPOINT_INDEX = re.compile(r"\Ackpt-(\d+)\.index\Z")


class ResumeError(RuntimeError):
    """No intact backup to resume from, and `train.resume` does not allow a fresh start."""


class KeptBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that keeps the newest `BACKUPS_KEPT` backups, not only the newest.

    tf-keras fixes its managers' `max_to_keep` at 1 (`worker_training_state`); a second kept
    backup costs one more copy of the weights and optimizer state on disk.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        state = self._training_state
        for manager in (state.read_checkpoint_manager, state.write_checkpoint_manager):
            manager._max_to_keep = BACKUPS_KEPT


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
    if not backups and not chief_dir.exists():
        return False
    where = f"{backup_dir} (damaged backups moved to {damaged_dir})"
    if resume != "auto":
        raise ResumeError(
            f"{where}: no intact backup to resume from. Set `train.resume: auto` (or "
            "`--set train.resume=auto`) to start this run fresh, or delete the backup.")
    aside = backup_dir.parent / f"backup-damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    backup_dir.rename(aside)
    logger.warning("%s: no intact backup; starting fresh (`train.resume: auto`); what was "
                   "left is kept in %s", backup_dir, aside)
    return False
