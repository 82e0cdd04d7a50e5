"""A run directory on remote storage (`--run-dir gs://…`, `s3://…`, `hdfs://…`, `ram://…`),
worked on through a local copy.

Object stores have no atomic rename, no file locks and no free-space figure, and the run's
machinery relies on all three: TensorFlow writes a checkpoint's shards under a temporary
name and renames them into place, the run lock is a `flock`, the disk guards read free space,
and resuming repairs the backup by moving damaged files aside. So a remote run directory is
*mirrored*: every command works on local disk exactly as on a local run, and
`tf.io.gfile` carries the files between the two.

- **Start:** every file of the remote directory is downloaded into a fresh local directory,
  so a run relaunched on another machine or pod (a retried TFJob replica, a Vertex AI job)
  gets its backup, vocabulary and checkpoints back and resumes.
- **Every epoch, and when the command ends however it ends** (an error or SIGTERM
  preemption included), the files that changed are uploaded in an order that keeps the
  remote copy readable at every moment: data files first, then checkpoint indexes, then the
  small state files that name them (TensorFlow's `checkpoint`, tfnlp's JSON); files removed
  locally are deleted there last. Each object appears whole, so a crash mid-upload leaves at
  worst a backup whose index names new data over old: resuming checks every tensor's
  checksum and falls back to the backup kept before it.
- **One writer:** a lease object, `lease.json` (holder, command, expiry), stands in for the
  flock. The holder renews it every `RENEW_SECONDS` from a thread and deletes it when done.
  Another `tfnlp train` is refused while it is live; a lease that expired, or whose holder
  was a process on this same host that is gone, is taken over (logged). `tf.io.gfile` has
  no compare-and-set, so two writers starting within the same moment can both write it:
  each reads it back and the one that finds the other's note steps back, which narrows that
  window to the storage's own write latency but does not close it.

Readers (`evaluate`, `export`, `compress --from`, `predict` of a run) download the same way,
are refused while a writer's lease is live, and upload only what they wrote (`evaluation.json`).
Non-chief workers of a cluster download and upload nothing: the chief owns the directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path

from tfnlp.atomic import is_remote, write_bytes, write_json
from tfnlp.backend import keras, tf
from tfnlp.logs import add_log_file
from tfnlp.training.run_lock import LOCK_NAME, RunDirectoryInUse

logger = logging.getLogger("tfnlp")

LEASE_NAME = "lease.json"
LEASE_SECONDS = 90  # a holder that stopped renewing for this long is presumed gone
RENEW_SECONDS = 20
ROLES = ("writer", "reader", "worker")


def upload_rank(relative: str) -> int:
    """The order a file goes up in: 0 data, 1 a checkpoint's index, 2 the state files that
    name what the others hold, so a reader of the remote copy never finds a name before
    its data.

    Example:
        >>> sorted(["checkpoints/checkpoint", "metrics.json", "checkpoints/best.index",
        ...         "checkpoints/best.data-00000-of-00001"], key=upload_rank)[:2]
        ['checkpoints/best.data-00000-of-00001', 'checkpoints/best.index']
    """
    name = relative.rsplit("/", 1)[-1]
    if name == "checkpoint" or name.endswith(".json") or name == "config.yaml":
        return 2
    return 1 if name.endswith(".index") else 0


def _mirrored(relative: str) -> bool:
    """Not the lock, lease or half-written files (atomic's `.name.…tmp` and `name.tmp-PID`,
    TF's `*_temp/`)."""
    parts = relative.split("/")
    return (parts[-1] not in (LEASE_NAME, LOCK_NAME) and not parts[-1].startswith(".")
            and ".tmp-" not in parts[-1]
            and not any(part.endswith("_temp") for part in parts[:-1]))


def _remote_files(root: str) -> list[str]:
    """Every file under `root`, relative to it ("" when `root` does not exist yet)."""
    if not tf.io.gfile.isdir(root):
        return []
    found = []
    for directory, _, names in tf.io.gfile.walk(root):
        prefix = directory[len(root):].strip("/")
        found += [f"{prefix}/{name}" if prefix else name for name in names]
    return sorted(found)


def _local_files(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime in ns) for every file under `root`."""
    stats = {}
    for path in root.rglob("*"):
        if path.is_file():
            stat = path.stat()
            stats[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return stats


class Lease:
    """The one writer's hold on a remote run directory (see the module docstring)."""

    def __init__(self, directory: str, command: str):
        self.path = f"{directory}/{LEASE_NAME}"
        self.note = {"id": uuid.uuid4().hex, "pid": os.getpid(), "host": socket.gethostname(),
                     "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def read(self) -> dict:
        try:
            return json.loads(tf.io.gfile.GFile(self.path, "rb").read() or b"{}")
        except (tf.errors.NotFoundError, ValueError):
            return {}

    def live_holder(self) -> dict | None:
        """The note of another live holder, or None (no lease, expired, or a dead local pid)."""
        note = self.read()
        if not note or note.get("id") == self.note["id"]:
            return None
        if note.get("expires", 0) < time.time():
            return None
        if note.get("host") == self.note["host"] and not _pid_alive(note.get("pid")):
            return None
        return note

    def refuse_if_held(self) -> None:
        holder = self.live_holder()
        if holder:
            raise RunDirectoryInUse(
                f"{self.path.rsplit('/', 1)[0]}: in use by `tfnlp {holder.get('command')}` "
                f"(pid {holder.get('pid')} on {holder.get('host')}, since "
                f"{holder.get('started')}; its lease {LEASE_NAME} expires in "
                f"{holder['expires'] - time.time():.0f} s unless renewed); wait for it to "
                "finish (or stop it), or give this command another run directory.")

    def acquire(self) -> Lease:
        self.refuse_if_held()
        previous = self.read()
        if previous:
            logger.warning("%s: taking over the lease left by `tfnlp %s` (pid %s on %s), "
                           "which expired or is no longer running", self.path,
                           previous.get("command"), previous.get("pid"), previous.get("host"))
        self._write()
        if self.read().get("id") != self.note["id"]:  # another writer wrote it meanwhile
            self.refuse_if_held()
        self._renewer = threading.Thread(target=self._renew, name="tfnlp-lease", daemon=True)
        self._renewer.start()
        return self

    def _write(self) -> None:
        write_json(self.path, {**self.note, "expires": time.time() + LEASE_SECONDS})

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self._write()
            except (tf.errors.OpError, OSError) as error:  # keep trying until it expires
                logger.warning("%s: could not renew the lease (%s)", self.path, error)

    def release(self) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join()
        try:
            if self.read().get("id") == self.note["id"]:
                tf.io.gfile.remove(self.path)
        except tf.errors.OpError as error:  # it expires by itself
            logger.warning("%s: could not remove the lease (%s)", self.path, error)


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class RunMirror:
    """The local working copy of a remote run directory, for the duration of a `with` block.

    Args:
        remote: the run directory's URL.
        command: the tfnlp command, for the lease note and the messages.
        role: "writer" (`tfnlp train`'s chief: holds the lease, uploads and deletes),
            "reader" (uploads only the files it wrote) or "worker" (downloads only).

    Attributes:
        local: the local directory to work in (removed when the block ends, unless the
            last upload failed: then it is kept and its path logged).

    Raises (on entering):
        RunDirectoryInUse: another writer's lease is live.
    """

    def __init__(self, remote: str, command: str, role: str = "writer"):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        self.remote = str(remote).rstrip("/")
        self.command = command
        self.role = role
        self.local = Path(tempfile.mkdtemp(prefix="tfnlp-run-"))
        self._lease = Lease(self.remote, command)
        self._known: dict[str, tuple[int, int]] = {}  # what the remote copy holds, by local stat
        self._log_handler = None

    def __enter__(self) -> RunMirror:
        try:
            if self.role == "writer":
                self._lease.acquire()
            elif self.role == "reader":  # a worker starts beside the chief that holds it
                self._lease.refuse_if_held()
            count = self.download()
        except BaseException:
            self._lease.release()
            shutil.rmtree(self.local, ignore_errors=True)
            raise
        logger.info("run directory %s: working on a local copy in %s (%d files downloaded)",
                    self.remote, self.local, count)
        if self.role == "writer":  # what `tfnlp train` keeps in a local run's train.log
            self._log_handler = add_log_file(self.local / "train.log")
        return self

    def download(self) -> int:
        files = [f for f in _remote_files(self.remote) if _mirrored(f)]
        for relative in files:
            target = self.local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            tf.io.gfile.copy(f"{self.remote}/{relative}", str(target), overwrite=True)
        self._known = {r: s for r, s in _local_files(self.local).items() if r in set(files)}
        return len(files)

    def sync(self) -> int:
        """Uploads what changed since the last sync (and, for the writer, deletes there what
        is gone here). Returns the number of files uploaded."""
        if self.role == "worker":
            return 0
        current = {r: s for r, s in _local_files(self.local).items() if _mirrored(r)}
        changed = sorted((r for r, s in current.items() if self._known.get(r) != s),
                         key=lambda r: (upload_rank(r), r))
        for relative in changed:
            # A temporary object renamed into place: it appears whole (TensorFlow's `ram://`
            # even appends when a copy overwrites an object).
            write_bytes(f"{self.remote}/{relative}", (self.local / relative).read_bytes())
            self._known[relative] = current[relative]
        if self.role == "writer":
            for relative in sorted(set(self._known) - set(current)):
                if tf.io.gfile.exists(f"{self.remote}/{relative}"):
                    tf.io.gfile.remove(f"{self.remote}/{relative}")
                del self._known[relative]
        return len(changed)

    def callback(self) -> keras.callbacks.Callback:
        """Syncs after every epoch; placed after the checkpoint and backup callbacks."""
        return keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs=None: self.sync())

    def __exit__(self, *exc) -> None:
        if self._log_handler:
            logging.getLogger("tfnlp").removeHandler(self._log_handler)
            self._log_handler.close()
        try:
            count = self.sync()
        except (tf.errors.OpError, OSError) as error:
            logger.error("run directory %s: the last upload failed (%s); the local copy is "
                         "kept in %s", self.remote, error, self.local)
            if exc[0] is None:
                raise
            return
        finally:
            if self.role == "writer":
                self._lease.release()
        logger.info("run directory %s: %d files uploaded", self.remote, count)
        shutil.rmtree(self.local, ignore_errors=True)


def working_copy(run_dir: str | Path, command: str, role: str = "reader"):
    """A `RunMirror` for a remote `run_dir`; for a local one, a context whose `local` is
    `run_dir` itself, so callers read `.local` either way."""
    if is_remote(run_dir):
        return RunMirror(str(run_dir), command, role)
    return contextlib.nullcontext(types.SimpleNamespace(local=Path(run_dir)))
