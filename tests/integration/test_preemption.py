"""SIGTERM (a scheduler's preemption) mid-epoch to a real `tfnlp train`: exit 143 once the
backup holds that step, then the same command resumes at the next step and finishes.

Slow (two tiny training runs, ~1 min on 2 cores; the same on a 2-worker cluster, and one
more cluster run posing as GCP): `.ci/run` runs it after the default suite.
`TFNLP_LOG_STEPS=1` logs each step, so the signal lands at a known point: after step 5 of
epoch 2 (of 62 steps; batch 8).
"""

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tests.integration.test_clusters import launch, wait_for
from tfnlp.backend import tf
from tfnlp.training.resume import checkpoint_problem

OVERRIDES = TINY_OVERRIDES + ["model.num_layers=1", "train.batch_size=8"]
SIGTERM_AFTER = r"INFO epoch 2 step 5/\d+ done"
BACKED_UP = re.compile(r"SIGTERM: the backup in \S+ holds epoch 2, step (\d+) of (\d+)")
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TFNLP_LOG_STEPS": "1"}


def start(run_dir):
    command = [sys.executable, "-m", "tfnlp", "train", str(REPO / "pipelines/tweets_lstm.yaml"),
               "--run-dir", str(run_dir), "--no-export", "--set", *OVERRIDES]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **ENV})
    lines = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    return process, lines


def saved_position(run_dir):
    """(epoch, step) the newest backup records, 0-based, and whether every tensor reads."""
    newest = tf.train.latest_checkpoint(str(run_dir / "backup" / "chief"))
    reader = tf.train.load_checkpoint(newest)
    position = tuple(int(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))
                     for name in ("ckpt_saved_epoch", "ckpt_saved_batch"))
    return position, checkpoint_problem(newest)


def half_written(run_dir):
    """TensorFlow's `*_temp` save directories, and a non-chief's share of a backup (its own
    working directory, `workertemp_<id>/`, stays until the run finishes, as after any crash)."""
    return [p for p in run_dir.rglob("*") if p.name.endswith("_temp")] + list(
        (run_dir / "backup").glob("workertemp*"))


@pytest.mark.slow
def test_sigterm_mid_epoch_exits_143_with_that_step_backed_up_then_resumes_at_the_next(
        tmp_path):
    began = time.monotonic()
    run_dir = tmp_path / "run"
    process, lines = start(run_dir)
    wait_for(lines, SIGTERM_AFTER, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143, "".join(lines)[-3000:]
    output = "".join(lines)
    step, steps = map(int, BACKED_UP.search(output).groups())
    assert 5 < step < steps, output[-2000:]  # mid-epoch, a step or two after the signal
    assert "(retryable: exit 143)" in output
    assert saved_position(run_dir) == ((1, step - 1), None)  # that step, every tensor intact
    assert half_written(run_dir) == [] and not (run_dir / "metrics.json").exists()

    process, lines = start(run_dir)
    assert process.wait(timeout=120) == 0, "".join(lines)[-3000:]
    output = "".join(lines)
    assert f"resuming at epoch 2, step {step + 1} of {steps} (backed up after step {step})" \
           in output
    trained = re.findall(r"INFO epoch (\d+) step (\d+)/\d+ done", output)
    assert trained[0] == ("2", str(step + 1)) and trained[-1] == ("2", str(steps))
    assert len(trained) == steps - step  # no step of epoch 1, none of epoch 2 twice
    assert (run_dir / "metrics.json").is_file() and not (run_dir / "backup").exists()
    print(f"preempted and resumed in {time.monotonic() - began:.1f} s")  # for the report


def preempt_worker_1(run_dir, export_dir, env) -> list[str]:
    """Launches a 2-worker cluster, SIGTERMs worker 1 mid-epoch 2 and checks that `tfnlp
    launch` exits 143; returns the cluster's output lines."""
    process, lines = launch(run_dir, export_dir, "--workers", "2", "--no-export",
                            env=env, overrides=OVERRIDES)
    worker_1 = int(wait_for(lines, r"\[launch\] worker 1: pid (\d+)", process).group(1))
    wait_for(lines, r"\[worker 0\] .*" + SIGTERM_AFTER, process)
    os.kill(worker_1, signal.SIGTERM)
    assert process.wait(timeout=120) == 143, "".join(lines)[-4000:]
    return lines


@pytest.mark.slow
def test_sigterm_to_one_worker_backs_up_every_worker_at_one_step_then_the_cluster_resumes(
        tmp_path):
    """Multi-worker mirrored: TensorFlow's PreemptionCheckpointHandler agrees on the step
    through the coordination service; every worker saves there and exits 143."""
    began = time.monotonic()
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    lines = preempt_worker_1(run_dir, export_dir, ENV)
    output = "".join(lines)
    backed_up = {worker: BACKED_UP.search("".join(
        line for line in lines if line.startswith(f"[worker {worker}]"))) for worker in (0, 1)}
    assert all(backed_up.values()), output[-4000:]
    step, steps = map(int, backed_up[0].groups())
    assert backed_up[1].groups() == backed_up[0].groups()  # one step, agreed by both
    assert output.count("(retryable: exit 143)") == 2
    assert saved_position(run_dir) == ((1, step - 1), None)
    assert half_written(run_dir) == []

    process, lines = launch(run_dir, export_dir, "--workers", "2", "--no-export",
                            env=ENV, overrides=OVERRIDES)
    assert process.wait(timeout=300) == 0, "".join(lines)[-4000:]
    output = "".join(lines)
    for worker in (0, 1):
        assert f"[worker {worker}] " in output
        assert re.search(rf"\[worker {worker}\] .* INFO resuming at epoch 2, step {step + 1} "
                         rf"of {steps}", output), output[-4000:]
    trained = re.findall(r"\[worker 0\] .* INFO epoch (\d+) step (\d+)/\d+ done", output)
    assert trained[0] == ("2", str(step + 1)) and len(trained) == steps - step
    assert (run_dir / "metrics.json").is_file()
    print(f"cluster preempted and resumed in {time.monotonic() - began:.1f} s")


class FakeMetadataServer(http.server.BaseHTTPRequestHandler):
    """Answers GCE's metadata query, so TensorFlow takes this machine for a GCP CPU VM."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"tfnlp-test")

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_where_tensorflow_does_not_watch_sigterm_the_worker_stops_without_a_step_backup(
        tmp_path):
    """On GCP CPU VMs TensorFlow's handler is inactive: one worker cannot save alone, so it
    exits 143 at once and the cluster resumes from the last epoch's backup."""
    server = http.server.HTTPServer(("127.0.0.1", 0), FakeMetadataServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    env = {**ENV, "GCE_METADATA_IP": f"127.0.0.1:{server.server_port}"}
    try:
        lines = preempt_worker_1(run_dir, export_dir, env)
    finally:
        server.shutdown()
    output = "".join(lines)
    assert re.search(r"\[worker 1\] tfnlp: error: \S+: stopped by SIGTERM \(preemption\) at "
                     r"epoch 2, step \d+, without a backup of that step .* resumes from the last "
                     r"epoch's backup\. \(retryable: exit 143\)", output), output[-4000:]
    assert saved_position(run_dir) == ((0, -1), None)  # epoch 1's, as after a SIGKILL
