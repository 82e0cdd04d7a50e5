"""The files `tfnlp launch --emit` writes, run as real clusters on loopback.

Each test takes the command an emitted file would run and the TF_CONFIG (or Slurm variables)
its engine would give each process, swaps the engine's host names for free loopback ports and
the shared volume for a temporary directory, and trains a tiny pipeline (1 epoch, 600 tweets,
a 1-layer 8-unit LSTM, no export) to exit 0. About 45 s per cluster on 2 shared cores.
"""

import io
import json
import os
import shlex
import socket
import sys

import pytest
import yaml

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.training.cluster import (
    SERVE_COMMAND,
    TaskSpec,
    cluster_tasks,
    free_ports,
    run_cluster,
)
from tfnlp.training.launch_files import (
    MOUNT_PATH,
    SERVE_ARGV,
    LaunchRequest,
    dynamic_worker_tf_config,
    emit,
    tfjob_tf_configs,
)

PIPELINE = str(REPO / "pipelines" / "tweets_lstm.yaml")
OVERRIDES = (*TINY_OVERRIDES, "train.epochs=1", "model.num_layers=1")
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


def on_loopback(configs: list[dict]) -> list[dict]:
    """The same TF_CONFIGs with each engine address replaced by its own free loopback port."""
    addresses = sorted({address for config in configs
                        for tasks in config["cluster"].values() for address in tasks})
    ports = dict(zip(addresses, free_ports(len(addresses))))
    return [{**config, "cluster": {job: [f"localhost:{ports[a]}" for a in tasks]
                                   for job, tasks in config["cluster"].items()}}
            for config in configs]


def here(argv: list[str], shared) -> list[str]:
    """An emitted command, run from this checkout: `tfnlp` is `python -m tfnlp` on this
    interpreter, and the shared volume's mount path is `shared`."""
    head = {"tfnlp": [sys.executable, "-m", "tfnlp"], "python": [sys.executable]}[argv[0]]
    return head + [arg.replace(f"{MOUNT_PATH}/", f"{shared}/") for arg in argv[1:]]


def run(command: list[str], tasks: list[TaskSpec], env=None) -> tuple[int, str]:
    out = io.StringIO()
    status = run_cluster(command, tasks, env={**ENV, **(env or {})}, out=out, timeout=240)
    return status, out.getvalue()


def tfjob_document(tmp_path, **shape) -> dict:
    request = LaunchRequest(PIPELINE, "tweets_lstm", overrides=OVERRIDES, image="tfnlp:test",
                            export=False, **shape)
    return yaml.safe_load(emit("tfjob", request, tmp_path).path.read_text())


def command_of(document: dict, kind: str) -> list[str]:
    (container,) = document["spec"]["tfReplicaSpecs"][kind]["template"]["spec"]["containers"]
    return container["command"]


def metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["train"]


@pytest.mark.slow
def test_a_tfjob_trains_on_the_tf_config_the_operator_would_inject(tmp_path):
    document = tfjob_document(tmp_path, workers=2)
    configs = tfjob_tf_configs(document)
    assert configs[1] == {
        "cluster": {"worker": ["tweets-lstm-worker-0.default.svc:2222",
                               "tweets-lstm-worker-1.default.svc:2222"]},
        "task": {"type": "worker", "index": 1}, "environment": "cloud"}
    shared = tmp_path / "shared"
    status, output = run(here(command_of(document, "Worker"), shared),
                         cluster_tasks(on_loopback(configs)))
    assert status == 0, output[-4000:]
    assert "[worker 1]" in output and "worker 1: done" in output
    train = metrics(shared / "runs" / "tweets_lstm")  # the TFJob's --run-dir, on the volume
    assert train["strategy"] == "multi_worker_mirrored" and train["replicas"] == 2


def consecutive_free_ports() -> int:
    """A port p with p + 1 free too (Slurm tasks on one node take the base port + local id)."""
    for _ in range(100):
        (port,) = free_ports(1)
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


@pytest.mark.slow
def test_an_sbatch_step_trains_on_the_tf_config_tfnlp_builds_from_slurm(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    request = LaunchRequest(PIPELINE, "tweets_lstm", workers=2, overrides=OVERRIDES,
                            run_dir=str(tmp_path / "run"), export=False)
    script = emit("slurm", request, tmp_path).path.read_text()
    (srun,) = [shlex.split(line) for line in script.splitlines() if line.startswith("srun ")]
    assert srun[:2] == ["srun", "--kill-on-bad-exit=1"]
    # The step as srun would start it with both tasks on one node, whose name only a (fake)
    # scontrol on PATH can resolve: tfnlp must ask it, and give the tasks ports p and p + 1.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/sh\n[ "$3" = "tfnlp-fake-node" ] && '
                                      'echo localhost\n')
    (bin_dir / "scontrol").chmod(0o755)
    port = consecutive_free_ports()
    step = {"SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "tfnlp-fake-node",
            "SLURM_STEP_TASKS_PER_NODE": "2", "SLURMD_NODENAME": "localhost",
            "TFNLP_SLURM_PORT": str(port), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    tasks = [TaskSpec("worker", rank, {**step, "SLURM_PROCID": str(rank),
                                       "SLURM_LOCALID": str(rank)}, True) for rank in (0, 1)]
    status, output = run(here(srun[2:], tmp_path), tasks)
    assert status == 0, output[-4000:]
    logged = [line.split("]")[0] for line in output.splitlines() if "TF_CONFIG: built from "
              "Slurm's variables (SLURM_STEP_NODELIST=tfnlp-fake-node)" in line]
    assert sorted(logged) == ["[worker 0", "[worker 1"], output[-4000:]
    train = metrics(tmp_path / "run")
    assert train["strategy"] == "multi_worker_mirrored" and train["replicas"] == 2


@pytest.mark.slow
def test_parameter_server_workers_and_servers_start_from_a_sparse_cluster(tmp_path):
    document = tfjob_document(tmp_path, workers=1, ps=1)
    assert command_of(document, "Worker") == command_of(document, "PS") == list(SERVE_ARGV)
    assert SERVE_ARGV[1:] == SERVE_COMMAND[1:]  # what run_cluster starts for servers
    # The servers get what the operator sends with enableDynamicWorker; the coordinator keeps
    # the whole cluster (the operator would send it none, which tfnlp refuses: unit-tested).
    configs = [config if config["task"]["type"] == "chief" else dynamic_worker_tf_config(config)
               for config in on_loopback(tfjob_tf_configs(document))]
    assert "sparseCluster" in configs[1] and configs[1]["sparseCluster"]["worker"] == {
        "0": configs[0]["cluster"]["worker"][0]}
    shared = tmp_path / "shared"
    status, output = run(here(command_of(document, "Chief"), shared), cluster_tasks(configs))
    assert status == 0, output[-4000:]
    logged = [line for line in output.splitlines() if "sparseCluster read as cluster" in line]
    assert sorted(line.split("]")[0] for line in logged) == ["[ps 0", "[worker 0"]
    assert metrics(shared / "runs" / "tweets_lstm")["strategy"] == "parameter_server"
