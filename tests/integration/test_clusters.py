"""`tfnlp launch` on real local clusters: multi-worker fault tolerance, parameter-server training.

Tiny pipelines (600 tweets, 300-token vocabulary, 8 LSTM units), so each cluster trains in
about a minute on 2 cores; the asserts share one cluster run where they can.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO, TINY_OVERRIDES

PIPELINE = str(REPO / "pipelines" / "tweets_lstm.yaml")
OVERRIDES = TINY_OVERRIDES + ["train.epochs=3", "model.num_layers=1"]


def launch(run_dir, export_dir, *args, env=None, pipeline=PIPELINE, overrides=OVERRIDES):
    """Starts `tfnlp launch`; its output lines are collected in the returned list."""
    command = [sys.executable, "-m", "tfnlp", "launch", *args, pipeline, "--run-dir",
               str(run_dir), "--set", *overrides, f"export.dir={export_dir}", "--timeout", "500"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), **(env or {})},
    )
    lines = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process, lines


def wait_for(lines, pattern, process, timeout=400):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            match = re.search(pattern, line)
            if match:
                return match
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared:\n{''.join(lines)[-4000:]}")


def epochs_logged(lines, task="worker 0"):
    return [int(m.group(1)) for line in lines
            if (m := re.match(rf"\[{task}\] .* INFO epoch (\d+)/3:", line))]


def versions(export_dir):
    model_dir = export_dir / "tweets_lstm"
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []


@pytest.mark.slow  # two cluster runs (~4 min on 2 shared cores); run with -m slow
def test_multi_worker_survives_a_killed_worker_and_resumes_from_the_backup(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    process, lines = launch(run_dir, export_dir, "--workers", "2")
    worker_1 = int(wait_for(lines, r"\[launch\] worker 1: pid (\d+)", process).group(1))
    wait_for(lines, r"\[worker 0\] .* INFO epoch 1/3:", process)
    time.sleep(0.5)  # into epoch 2
    os.kill(worker_1, signal.SIGKILL)
    assert process.wait(timeout=120) == 128 + signal.SIGKILL, "".join(lines)[-3000:]
    assert any("[launch] exit status 137" in line for line in lines)
    assert versions(export_dir) == [] and not (run_dir / "metrics.json").exists()
    assert (run_dir / "backup").is_dir()

    process, lines = launch(run_dir, export_dir, "--workers", "2")
    assert process.wait(timeout=500) == 0, "".join(lines)[-4000:]
    output = "".join(lines)
    assert "[worker 0]" in output and "[worker 1]" in output
    assert "resuming from the backup" in output
    resumed = epochs_logged(lines)
    assert resumed and resumed[0] >= 2 and resumed[-1] == 3, resumed  # not from epoch 1
    # Only the chief wrote the final results, once; the workers' temp dirs are gone.
    assert versions(export_dir) == ["1"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["strategy"] == "multi_worker_mirrored"
    assert metrics["train"]["replicas"] == 2
    assert metrics["export"]["path"] == str(export_dir / "tweets_lstm" / "1")
    assert not list(run_dir.rglob("workertemp_*")) and not (run_dir / "backup").exists()
    with open(run_dir / "history.csv") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["0", "1", "2"]


@pytest.mark.slow  # four processes (~2 min on 2 shared cores); run with -m slow
def test_parameter_server_trains_asynchronously_on_two_workers(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    process, lines = launch(run_dir, export_dir, "--workers", "2", "--ps", "1",
                            env={"TFNLP_TRACE_INPUT": "1"})
    assert process.wait(timeout=500) == 0, "".join(lines)[-4000:]
    output = "".join(lines)
    assert "parameter_server, 2 worker(s), 1 parameter server(s)" in output
    # The coordinator handed steps to both workers: each read batches from its own pipeline.
    batches = {w: output.count(f"[worker {w}] tfnlp input:") for w in (0, 1)}
    assert batches[0] > 0 and batches[1] > 0, batches
    assert sum(batches.values()) >= 3 * 15  # 3 epochs x 15 training steps (+ validation)
    with open(run_dir / "history.csv") as file:
        losses = [float(row["loss"]) for row in csv.DictReader(file)]
    assert len(losses) == 3 and losses[-1] < losses[0]  # it converges
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["strategy"] == "parameter_server"
    assert versions(export_dir) == ["1"]
    assert not list(run_dir.rglob("workertemp_*"))
