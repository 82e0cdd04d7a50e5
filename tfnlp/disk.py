"""A full disk, told as one sentence: which directory, how much is free, how much was needed.

TensorFlow reports ENOSPC as a `ResourceExhaustedError` (or an `UnknownError` on some
filesystems) whose text ends in "No space left on device"; Python raises `OSError(ENOSPC)`.
`disk_guard` turns either into a `DiskFullError` and removes the half-written temporary files
TensorFlow leaves behind (`*_temp/` beside a checkpoint), so the space comes back and nothing
half-written remains. What was complete before (checkpoints, backups, export versions) is
never touched: they are written under new names and renamed into place.
"""

from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path

from tfnlp.backend import tf

_NO_SPACE = ("No space left on device", "Disk quota exceeded")


class DiskFullError(OSError):
    """The disk filled while tfnlp wrote; the message names the directory and the space."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(error: BaseException) -> bool:
    """True for Python's and TensorFlow's ways of saying the disk (or quota) is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, tf.errors.OpError) and any(s in str(error) for s in _NO_SPACE)


def variable_bytes(variables) -> int:
    """The bytes `variables` take in a checkpoint (their dtype sizes, no compression)."""
    return sum(v.shape.num_elements() * v.dtype.size for v in variables)


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


def _remove_temporaries(directory: Path) -> None:
    """Deletes what an interrupted TensorFlow save leaves: `<prefix>_temp/` with its `part-*`
    shards, or empty."""
    if directory.is_dir():
        for leftover in directory.rglob("*_temp"):
            if leftover.is_dir() and all(p.name.startswith("part-") for p in leftover.iterdir()):
                shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def disk_guard(directory: str | Path, writing: str, needed_bytes: int, kept: str):
    """Turns a full disk inside the block into a `DiskFullError` naming `directory`.

    Args:
        directory: where the block writes (named in the message, cleaned of temporaries).
        writing: what was being written, e.g. "the epoch's checkpoints".
        needed_bytes: about how much the block writes in all.
        kept: what is still intact, e.g. "the previous checkpoints are intact".
    """
    try:
        yield
    except DiskFullError:
        raise  # an inner guard already named the directory
    except Exception as error:
        if not is_disk_full(error):
            raise
        directory = Path(directory)
        _remove_temporaries(directory)
        free = shutil.disk_usage(directory).free if directory.exists() else 0
        raise DiskFullError(
            f"{directory}: the disk filled while writing {writing} ({_megabytes(free)} free, "
            f"about {_megabytes(needed_bytes)} needed); {kept}. Free some space there or "
            "choose another directory, then run the command again."
        ) from error
