"""One writer per run directory: a second command exits at once naming the holder, and the
lock of a process that died is taken over."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_OVERRIDES, run_cli
from tfnlp.config import load_pipeline
from tfnlp.training.run_lock import RunDirectoryInUse, RunLock, locked
from tfnlp.training.trained import evaluate_run, export_run

HOLD = ("import sys, time\nfrom tfnlp.training.run_lock import RunLock\n"
        "RunLock(sys.argv[1], 'train').acquire()\nprint('held', flush=True)\ntime.sleep(600)\n")


@pytest.fixture
def holder(tmp_path):
    """Another process holding `tmp_path / 'run'`, as a running `tfnlp train` does."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_train_exits_at_once_naming_the_holder(holder, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("train", str(REPO / "pipelines" / "tweets_bilstm.yaml"), "--run-dir",
                     str(run_dir), "--set", *TINY_OVERRIDES)
    assert result.returncode == 1
    assert (f"{run_dir}: in use by `tfnlp train` (pid {holder.pid} on {socket.gethostname()}, "
            "since ") in result.stderr
    assert "another run directory" in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing else written


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_evaluate_and_export_refuse_a_run_in_use(tiny_run, tmp_path, command):
    # flock: a second open file of the lock conflicts, even in this process.
    lock = RunLock(tiny_run.run_dir, "train")
    with lock, pytest.raises(RunDirectoryInUse, match=f"pid {os.getpid()}"):
        if command == "evaluate":
            evaluate_run(tiny_run.run_dir)
        else:
            export_run(tiny_run.run_dir, str(tmp_path / "exports"))
    assert not (tmp_path / "exports").exists()


def test_compress_refuses_an_output_directory_in_use(tiny_run, tmp_path):
    from tfnlp.compression.pipeline import compress_run

    config = load_pipeline(REPO / "pipelines" / "tweets_bilstm.yaml", TINY_OVERRIDES)
    with RunLock(tmp_path / "out", "train"), pytest.raises(RunDirectoryInUse, match="out: in use"):
        compress_run(config, tiny_run.run_dir, tmp_path / "out")


def test_the_lock_of_a_killed_process_is_taken_over_with_a_warning(holder, tmp_path, caplog):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with caplog.at_level("WARNING", logger="tfnlp"), RunLock(tmp_path / "run", "export"):
        note = json.loads((tmp_path / "run" / ".lock").read_text())
        assert note["pid"] == os.getpid() and note["command"] == "export"
    assert f"taking over the lock left by `tfnlp train` (pid {holder.pid}" in caplog.text


def test_a_released_lock_leaves_nothing_to_take_over(tmp_path, caplog):
    with RunLock(tmp_path, "train"):
        pass
    assert (tmp_path / ".lock").read_text() == ""
    with caplog.at_level("WARNING", logger="tfnlp"), RunLock(tmp_path, "train"):
        pass
    assert "taking over" not in caplog.text


def test_a_directory_both_read_and_written_is_locked_once_exclusively(tmp_path):
    twice = locked(tmp_path, command="compress", reading=(tmp_path / ".." / tmp_path.name,))
    with twice, pytest.raises(RunDirectoryInUse):
        RunLock(tmp_path, "train").acquire()


def test_readers_share_a_run_directory_and_keep_writers_out(tmp_path):
    readers = RunLock(tmp_path, "export", shared=True), RunLock(tmp_path, "evaluate", shared=True)
    with readers[0], readers[1], pytest.raises(RunDirectoryInUse, match="command reading it"):
        RunLock(tmp_path, "train").acquire()
    with RunLock(tmp_path, "train"):  # free again once the readers are done
        pass
