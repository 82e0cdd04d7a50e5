"""Exit codes for schedulers: 1–127 need a person, 128 and above are worth a retry.

Kubeflow's TFJob `restartPolicy: ExitCode` restarts a replica that exits 128–255 and fails
the job on 1–127; requeue scripts for Vertex AI and Slurm commonly use the same split. `tfnlp`
exits with:

    0    done
    1    permanent: a bad pipeline file or config, bad data, no intact backup to resume,
         a full disk, or anything unknown
    2    permanent: a bad command line (argparse's usage error)
    129  retryable: a lost peer, a collective that timed out or was aborted, a transient
         I/O error (EIO, ETIMEDOUT, ECONNRESET, ECONNREFUSED, EAGAIN)
    130  retryable: interrupted (Ctrl-C; 128 + SIGINT)
    143  retryable: preempted, i.e. SIGTERM during training, once the backup is written
         (128 + SIGTERM); the same command resumes at the next step

A process killed by a signal outside training reads the same to a scheduler: 128 + the
signal (137 for SIGKILL, 143 for SIGTERM).
"""

from __future__ import annotations

import errno
import sys

OK = 0
FAILED = 1
USAGE = 2
RETRYABLE = 129
INTERRUPTED = 130
PREEMPTED = 143

FIRST_RETRYABLE = 128

# OSError numbers a second try may not meet (a flaky disk, network filesystem or server).
TRANSIENT_ERRNOS = frozenset(
    {errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.EAGAIN})
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

# Error classes as (module, class name), looked up only in modules already imported: an
# error of a class whose module was never imported cannot exist, and importing them here
# would add TensorFlow's start-up to every error message, usage mistakes included.
_PREEMPTED = (("tfnlp.training.resume", "Preempted"),)
_PERMANENT = (("tfnlp.config.loading", "ConfigError"), ("tfnlp.config.schema", "FieldError"),
              ("tfnlp.data.records", "DataError"), ("tfnlp.training.resume", "ResumeError"))
# A lost peer; TensorFlow's errors for a peer, collective or remote filesystem that did not
# answer in time or gave up.
_RETRYABLE = (("tfnlp.training.distributed", "WorkerLost"),
              ("tensorflow.python.framework.errors_impl", "UnavailableError"),
              ("tensorflow.python.framework.errors_impl", "DeadlineExceededError"),
              ("tensorflow.python.framework.errors_impl", "AbortedError"),
              ("tensorflow.python.framework.errors_impl", "CancelledError"))


def _loaded(names) -> tuple[type, ...]:
    return tuple(getattr(sys.modules[module], name) for module, name in names
                 if module in sys.modules)


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return True
    disk = sys.modules.get("tfnlp.disk")  # TensorFlow's way of saying it
    return disk is not None and disk.is_disk_full(error)


def _own_code(error: BaseException) -> int | None:
    """The code `error`'s own kind implies, or None when its kind says nothing."""
    if isinstance(error, _loaded(_PREEMPTED)):
        return PREEMPTED
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, _loaded(_PERMANENT)) or _is_disk_full(error):
        return FAILED
    if isinstance(error, _loaded(_RETRYABLE)):
        return RETRYABLE
    if isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS:
        return RETRYABLE
    return None


def exit_code_for(error: BaseException) -> int:
    """The exit status `tfnlp` ends with after `error`: 1–127 permanent, ≥ 128 retryable.

    The error's own kind decides; an error of no known kind defers to the one it was raised
    from (`raise ... from cause`), and is `FAILED` when none is known.

    Args:
        error: the exception that ended the command.

    Returns:
        One of `FAILED`, `RETRYABLE`, `INTERRUPTED` or `PREEMPTED`.

    Example:
        >>> import errno
        >>> from tfnlp.data.records import DataError
        >>> from tfnlp.training.resume import Preempted
        >>> exit_code_for(DataError("train.csv:3: missing text"))
        1
        >>> exit_code_for(OSError(errno.EIO, "Input/output error"))
        129
        >>> exit_code_for(OSError(errno.ENOENT, "No such file or directory"))
        1
        >>> exit_code_for(Preempted("stopped by SIGTERM"))
        143
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        code = _own_code(error)
        if code is not None:
            return code
        error = error.__cause__
    return FAILED


def is_retryable(code: int) -> bool:
    """True for the codes a scheduler should retry (128 and above)."""
    return code >= FIRST_RETRYABLE
