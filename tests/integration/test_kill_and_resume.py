"""SIGKILL a real `tfnlp train` at several moments; starting it again must finish the job.

Each kill lands at a different phase: vocabulary learning, right after an epoch ends (while
checkpoints and the backup are written), mid-epoch, and during evaluation/export. After every
kill, no partial export version may be visible; each restart after a finished epoch must resume
from the backup; the final run directory and export must be complete and its test accuracy
close to an uninterrupted run's (resumed runs draw different shuffles and dropout masks, so
only closeness can be asked for).

Slow (~3 min of real training runs): `.ci/run` runs it after the default suite.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO, TINY_OVERRIDES

OVERRIDES = TINY_OVERRIDES + ["train.epochs=3", "model.num_layers=1"]
TOLERANCE = 0.1  # test accuracy, on 60 test tweets
RESUMED = "resuming from the backup"


def start(run_dir, export_dir):
    command = [sys.executable, "-m", "tfnlp", "train", str(REPO / "pipelines/tweets_lstm.yaml"),
               "--run-dir", str(run_dir), "--set", *OVERRIDES, f"export.dir={export_dir}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    return process, lines


def wait_for(lines, marker, process, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(marker in line for line in lines):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise TimeoutError(f"{marker!r} never appeared: {''.join(lines)[-2000:]}")


def assert_no_partial_versions(export_dir):
    model_dir = export_dir / "tweets_lstm"
    for version in (model_dir.iterdir() if model_dir.is_dir() else []):
        if version.name.isdigit():
            assert (version / "saved_model.pb").is_file(), version
            assert (version / "variables" / "variables.index").is_file(), version


@pytest.mark.slow
def test_kill_at_random_moments_then_resume_to_the_same_result(tmp_path):
    rng = random.Random(1234)
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    # (log marker to wait for, then a random extra delay in seconds before SIGKILL)
    moments = [
        ("splits:", rng.uniform(0.0, 1.0)),  # while the vocabulary is learned
        ("epoch 1/3", rng.uniform(0.0, 0.2)),  # checkpoint/backup writing at the epoch's end
        (RESUMED, rng.uniform(2.0, 4.0)),  # in the middle of an epoch
        ("epoch 3/3", rng.uniform(0.0, 0.5)),  # evaluation
        ("epoch 3/3", rng.uniform(1.0, 3.0)),  # evaluation or export
        ("data:", rng.uniform(0.0, 15.0)),  # anywhere
    ]
    kills = 0
    for marker, delay in moments:
        # A backup counts once written in full (a kill while the first is written leaves none).
        had_backup = any((run_dir / "backup" / "chief").glob("ckpt-*.index"))
        if marker == RESUMED and not had_backup:  # the kill before beat the first backup
            marker = "epoch 1/3"
        process, lines = start(run_dir, export_dir)
        reached = wait_for(lines, marker, process)
        if had_backup:  # a finished epoch is never trained again
            assert wait_for(lines, RESUMED, process), "".join(lines)[-3000:]
        if reached:
            time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        assert_no_partial_versions(export_dir)
    assert kills >= 5
    process, lines = start(run_dir, export_dir)
    assert process.wait(timeout=400) == 0, "".join(lines)[-3000:]
    assert_no_partial_versions(export_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["export"]["path"].startswith(str(export_dir))
    assert (run_dir / "confusion_matrix.png").is_file()
    assert not (run_dir / "backup").exists()

    clean_dir = tmp_path / "clean"
    process, lines = start(clean_dir, tmp_path / "clean_models")
    assert process.wait(timeout=400) == 0, "".join(lines)[-3000:]
    clean = json.loads((clean_dir / "metrics.json").read_text())
    assert abs(metrics["test"]["accuracy"] - clean["test"]["accuracy"]) <= TOLERANCE
