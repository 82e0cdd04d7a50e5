"""A local tf.distribute cluster: one process per task on loopback ports (`tfnlp launch`).

For trying a multi-worker pipeline on one machine and for the tests: every task gets its own
`TF_CONFIG`, its output is streamed with a `[worker 1]` prefix, and the cluster fails as soon
as any training task fails (the others are stopped, so nothing waits on a dead peer).

Multi-worker mirrored: N `worker` tasks all run the training command; worker 0 is the chief.
Parameter server: one `chief` task (the coordinator) runs the training command; N `worker`
and M `ps` tasks run `python -m tfnlp.training.cluster serve` (a `tf.distribute.Server`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

SERVE_COMMAND = (sys.executable, "-m", "tfnlp.training.cluster", "serve")


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cluster_spec(workers: int, ps: int = 0) -> dict[str, list[str]]:
    """Loopback addresses for a cluster: workers only, or chief + workers + ps.

    Raises:
        ValueError: fewer than one worker, or a negative number of parameter servers.
    """
    if workers < 1:
        raise ValueError(f"`--workers` must be at least 1. Received: workers={workers}.")
    if ps < 0:
        raise ValueError(f"`--ps` must be 0 or more. Received: ps={ps}.")
    counts = {"worker": workers} if ps == 0 else {"chief": 1, "worker": workers, "ps": ps}
    ports = iter(free_ports(sum(counts.values())))
    return {kind: [f"localhost:{next(ports)}" for _ in range(n)] for kind, n in counts.items()}


@dataclass
class Task:
    """One process of the cluster."""

    kind: str
    index: int
    process: subprocess.Popen
    trains: bool  # runs the training command (else a server that never exits by itself)
    reader: threading.Thread = field(default=None)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.index}"


def _stream(task: Task, out, lock: threading.Lock) -> None:
    for line in task.process.stdout:
        with lock:
            out.write(f"[{task.label}] {line}")
            out.flush()


def _stop(tasks: list[Task], grace: float = 5.0) -> None:
    """SIGTERM every live task, then SIGKILL what is left after `grace` seconds."""
    for task in tasks:
        if task.process.poll() is None:
            task.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for task in tasks:
        try:
            task.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            task.process.kill()
            task.process.wait()


def launch_cluster(
    command: Sequence[str], *, workers: int, ps: int = 0, env: dict | None = None,
    out=None, timeout: float | None = None,
) -> int:
    """Runs `command` as a local cluster and returns its exit status.

    Args:
        command: the training command (argv), e.g. `python -m tfnlp train PIPELINE`.
        workers: worker tasks.
        ps: parameter-server tasks; 0 means multi-worker mirrored (every worker trains),
            more means parameter-server training (a chief coordinator trains).
        env: extra environment variables for every task.
        out: where the prefixed output goes (default sys.stdout).
        timeout: stop everything and return 124 after this many seconds.

    Returns:
        0 when every training task succeeded; otherwise the first failure's exit status
        (128 + signal number for a task killed by a signal).
    """
    spec = cluster_spec(workers, ps)
    configs = [{"cluster": spec, "task": {"type": kind, "index": index}}
               for kind, addresses in spec.items() for index in range(len(addresses))]
    return run_cluster(command, cluster_tasks(configs), env=env, out=out, timeout=timeout)


@dataclass(frozen=True)
class TaskSpec:
    """One process to start: its cluster role, what makes it that task, and whether it trains.

    Attributes:
        kind: "worker", "chief" or "ps".
        index: its index in its job.
        env: the variables that make it this task (its `TF_CONFIG`, or Slurm's variables).
        trains: runs the training command (else `python -m tfnlp.training.cluster serve`).
    """

    kind: str
    index: int
    env: dict[str, str]
    trains: bool


def cluster_tasks(tf_configs: Sequence[dict]) -> list[TaskSpec]:
    """One task per `TF_CONFIG` (plain or `sparseCluster`): in a cluster with parameter
    servers only the chief trains (the coordinator); otherwise every task does."""
    parameter_server = any(config["task"]["type"] == "ps" for config in tf_configs)
    return [TaskSpec(config["task"]["type"], int(config["task"].get("index", 0)),
                     {"TF_CONFIG": json.dumps(config)},
                     not parameter_server or config["task"]["type"] == "chief")
            for config in tf_configs]


def run_cluster(
    command: Sequence[str], tasks: Sequence[TaskSpec], *, env: dict | None = None,
    out=None, timeout: float | None = None,
) -> int:
    """Starts one process per task, streams their output, and returns the cluster's status.

    Training tasks run `command`, the others `python -m tfnlp.training.cluster serve`. The
    cluster fails as soon as any task fails (or a server exits), and the rest are stopped.

    Args: see `launch_cluster`; `tasks` from `cluster_tasks` or made by hand (e.g. a Slurm
        step's tasks, each with its own `SLURM_PROCID`).
    """
    out = out or sys.stdout
    lock = threading.Lock()
    # Parameter-server RPCs report a dead worker to the coordinator at once.
    fail_fast = {"GRPC_FAIL_FAST": "use_caller"} if any(t.kind == "ps" for t in tasks) else {}
    started: list[Task] = []
    for spec in tasks:
        process = subprocess.Popen(
            list(command if spec.trains else SERVE_COMMAND),
            env={**fail_fast, **os.environ, **(env or {}), **spec.env, "PYTHONUNBUFFERED": "1"},
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1,
        )
        task = Task(spec.kind, spec.index, process, spec.trains)
        task.reader = threading.Thread(target=_stream, args=(task, out, lock), daemon=True)
        task.reader.start()
        started.append(task)
    kinds = Counter(task.kind for task in started)
    with lock:
        out.write(f"[launch] {len(started)} task(s): "
                  + ", ".join(f"{kind} x{count}" for kind, count in kinds.items()) + "\n")
        for task in started:
            out.write(f"[launch] {task.label}: pid {task.process.pid}\n")
        out.flush()
    status = _wait(started, timeout)
    _stop(started)
    for task in started:
        task.reader.join(timeout=5)
        if not task.reader.is_alive():  # else a grandchild still holds the pipe: leave it
            task.process.stdout.close()
    with lock:
        out.write(f"[launch] exit status {status}\n")
        out.flush()
    return status


def _wait(tasks: list[Task], timeout: float | None) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        training = [task for task in tasks if task.trains]
        for task in tasks:
            code = task.process.poll()
            if code is not None and (code != 0 or not task.trains):
                # A failed task, or a server that died: the cluster cannot go on.
                return code if code > 0 else 128 - code if code < 0 else 1
        if all(task.process.poll() == 0 for task in training):
            return 0
        if deadline is not None and time.monotonic() > deadline:
            return 124
        time.sleep(0.1)


def serve() -> None:
    """Runs this process's `TF_CONFIG` task as a `tf.distribute.Server` until it is stopped.

    Parameter servers and parameter-server workers run this; the coordinator sends them work.
    """
    # The model's in-graph tokenizer ops must be registered where the steps run.
    import tensorflow_text  # noqa: F401

    from tfnlp.backend import tf
    from tfnlp.logs import configure_logging
    from tfnlp.training.strategy import tf_config

    configure_logging()  # e.g. where TF_CONFIG came from (a sparse cluster read as cluster)
    config = tf_config()
    task = config.get("task", {})
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(
        resolver.cluster_spec(), job_name=task["type"], task_index=int(task.get("index", 0)),
        protocol="grpc", start=True,
    )
    print(f"serving {task['type']} {task.get('index', 0)} at {server.target}", flush=True)
    server.join()


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        sys.exit("usage: python -m tfnlp.training.cluster serve   (reads TF_CONFIG)")
    serve()
