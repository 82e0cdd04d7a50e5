"""One writer per run directory: a `flock` on `<run_dir>/.lock`, exclusive for the command
that writes (`train`, `compress` into its output) and shared for those that only read a
finished run (`evaluate`, `export`, `compress --from`): readers run side by side, never
while a writer does.

`fcntl.flock` from the standard library, not a lock-file library or a pid file: the kernel
drops the lock when its holder dies, however it dies (SIGKILL, the OOM killer, a reboot), so
a stale lock needs no guessing: if `flock` succeeds, whoever wrote the note in the file is
gone, and the note is only history (logged as a take-over). The `filelock` package does the
same on POSIX; it would add a dependency and nothing more. The lock is advisory: it stops
tfnlp commands, not other programs. On NFS it works where the server supports byte-range
locks (Linux emulates `flock` with them).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

logger = logging.getLogger("tfnlp")

LOCK_NAME = ".lock"


class RunDirectoryInUse(RuntimeError):
    """Another live tfnlp command holds the run directory; the message names it."""


def _holder_note(command: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _describe(note: dict) -> str:
    if not note:  # readers leave no note: there may be several
        return "a tfnlp command reading it (evaluate, export or compress)"
    return (f"`tfnlp {note.get('command', '?')}` (pid {note.get('pid', '?')} on "
            f"{note.get('host', '?')}, since {note.get('started', '?')})")


class RunLock:
    """Holds `<directory>/.lock` while `with RunLock(directory, command):` runs.

    Args:
        directory: the run (or output) directory.
        command: the tfnlp command, for the note a refused command shows.
        shared: a reader's lock: other readers may hold it too, a writer may not.

    Raises (on entering):
        RunDirectoryInUse: a live process holds it in a conflicting way; the message names
            the writer's pid, host, command and start time (or says readers hold it), and
            the fix.
    """

    def __init__(self, directory: str | Path, command: str, shared: bool = False):
        self.path = Path(directory) / LOCK_NAME
        self.command = command
        self.shared = shared
        self._fd: int | None = None

    def _read_note(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirectoryInUse(
                f"{self.path.parent}: in use by {_describe(self._read_note())}; wait for it "
                "to finish (or stop it), or give this command another run directory."
            ) from None
        previous = self._read_note()
        if previous:  # only writers leave notes, and flock succeeded: that writer is dead
            logger.warning("%s: taking over the lock left by %s, which is no longer running",
                           self.path.parent, _describe(previous))
        if previous or not self.shared:  # a reader leaves an empty note as it is, untouched
            os.ftruncate(fd, 0)
        if not self.shared:
            os.write(fd, json.dumps(_holder_note(self.command)).encode())
            os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        if not self.shared:
            os.ftruncate(self._fd, 0)  # an empty note: released cleanly, nothing to take over
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def locked(*directories: str | Path, command: str, reading: tuple = ()):
    """Holds the lock of each directory (each once, however it is spelled) for the block:
    shared for those in `reading` that are not also written, exclusive for the others."""
    written = {Path(d).resolve() for d in directories}
    read = {Path(d).resolve() for d in reading} - written
    with ExitStack() as stack:
        for directory in sorted(written | read):  # one order everywhere: no lock cycles
            stack.enter_context(RunLock(directory, command, shared=directory in read))
        yield
