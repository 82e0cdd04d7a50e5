"""A run directory on remote storage, tried on TensorFlow's in-memory `ram://` filesystem: a
whole tiny run and its export go there, an interrupted run resumes from the backup it left
there, and `evaluate` and `predict` read it back; the lease keeps one writer."""

import json
import logging
import socket
import tempfile
import time

import numpy as np
import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp import cli
from tfnlp.atomic import write_json
from tfnlp.backend import keras, tf
from tfnlp.config import load_pipeline
from tfnlp.training import remote_run
from tfnlp.training.remote_run import LEASE_NAME, Lease, RunMirror
from tfnlp.training.run import train_pipeline
from tfnlp.training.run_lock import RunDirectoryInUse

TEXTS = ["what a lovely day", "this is awful"]


class Interrupted(Exception):
    pass


class InterruptAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise Interrupted("stopped after the first epoch")


def _read(url: str) -> str:
    return tf.io.gfile.GFile(url, "r").read()


def _files(url: str) -> set[str]:
    return set(remote_run._remote_files(url))


@pytest.fixture
def tfnlp_logger_restored():
    """`cli.main` configures the `tfnlp` logger (no propagation); put it back afterwards."""
    logger = logging.getLogger("tfnlp")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield logger
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.fixture
def local_copies(tmp_path, monkeypatch):
    """The directory the local copies go to (the temporary directory, redirected)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_whole_run_and_export_live_in_ram_and_resume_and_read_back_from_there(
        capsys, tfnlp_logger_restored, local_copies):
    run_dir, models = "ram://remote-run-test/run", "ram://remote-run-test/models"
    overrides = [*TINY_OVERRIDES, "train.epochs=2", f'export.dir="{models}"']
    pipeline = REPO / "pipelines" / "tweets_lstm.yaml"
    config = load_pipeline(pipeline, overrides)
    with pytest.raises(Interrupted):
        train_pipeline(config, run_dir, extra_callbacks=[InterruptAfterFirstEpoch()])
    left = _files(run_dir)
    # The error path uploaded the epoch's backup, checkpoints and state; no lease is left.
    assert {"config.yaml", "vocab.txt", "checkpoints/best.index", "checkpoints/checkpoint",
            "backup/chief/checkpoint", "history.csv"} <= left, left
    assert any(f.startswith("backup/chief/ckpt-") and f.endswith(".index") for f in left)
    assert LEASE_NAME not in left and ".lock" not in left

    assert cli.main(["train", str(pipeline), "--run-dir", run_dir,
                     *sum((["--set", o] for o in overrides), [])]) == 0
    headline = capsys.readouterr().out
    assert f"run {run_dir}" in headline and f"export {models}/tweets_lstm/1" in headline
    log = _read(f"{run_dir}/train.log")
    assert "resuming from the backup" in log and "vocabulary: reusing" in log
    finished = _files(run_dir)
    assert {"metrics.json", "training_curves.png", "train.log", "checkpoints/best.index"} <= (
        finished)
    assert not [f for f in finished if f.startswith("backup/")]  # removed when training ended
    metrics = json.loads(_read(f"{run_dir}/metrics.json"))
    assert metrics["train"]["epochs_run"] == 1  # the second epoch only: the first was resumed
    assert len(_read(f"{run_dir}/history.csv").strip().splitlines()) == 1 + 2

    assert cli.main(["evaluate", run_dir]) == 0
    evaluated = json.loads(_read(f"{run_dir}/evaluation.json"))
    assert evaluated["test"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])

    capsys.readouterr()
    rows = []
    for source in (run_dir, f"{models}/tweets_lstm"):
        assert cli.main(["predict", source, *TEXTS]) == 0
        rows.append([list(json.loads(line)["probabilities"].values())
                     for line in capsys.readouterr().out.splitlines()])
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-5)
    assert not list(local_copies.glob("tfnlp-run-*"))  # every local copy was removed


def test_sync_uploads_data_before_the_indexes_and_state_that_name_it(monkeypatch, local_copies):
    remote = "ram://remote-run-test/order"
    mirror = RunMirror(remote, "train")
    with mirror:
        for name in ("checkpoints/checkpoint", "checkpoints/best.index",
                     "checkpoints/best.data-00000-of-00001", "metrics.json", "history.csv",
                     ".metrics.json.123.tmp", "checkpoints/best_temp/part"):
            (mirror.local / name).parent.mkdir(parents=True, exist_ok=True)
            (mirror.local / name).write_text(name)
        copied = []
        rename = tf.io.gfile.rename
        monkeypatch.setattr(tf.io.gfile, "rename", lambda src, dst, overwrite=False: (
            copied.append(dst[len(remote) + 1:]), rename(src, dst, overwrite))[1])
        assert mirror.sync() == 5
        assert copied == ["checkpoints/best.data-00000-of-00001", "history.csv",
                          "checkpoints/best.index", "checkpoints/checkpoint", "metrics.json"]
        assert mirror.sync() == 0  # nothing changed
        (mirror.local / "metrics.json").write_text("{}")
        assert mirror.sync() == 1 and _read(f"{remote}/metrics.json") == "{}"  # replaced
        (mirror.local / "history.csv").unlink()
        mirror.sync()
        assert "history.csv" not in _files(remote)
        assert tf.io.gfile.exists(f"{remote}/{LEASE_NAME}")  # held while the block runs
    assert not tf.io.gfile.exists(f"{remote}/{LEASE_NAME}") and not mirror.local.exists()


def _lease_note(remote: str, **note) -> None:
    write_json(f"{remote}/{LEASE_NAME}", {"id": "other", "pid": 1, "command": "train",
                                           "started": "then", **note})


def test_a_live_lease_elsewhere_refuses_a_second_writer_and_names_it():
    remote = "ram://remote-run-test/live"
    _lease_note(remote, host="node-7", expires=time.time() + 60)
    with pytest.raises(RunDirectoryInUse, match=r"`tfnlp train` \(pid 1 on node-7.*expires in"):
        RunMirror(remote, "train").__enter__()
    with pytest.raises(RunDirectoryInUse):  # a reader waits for the writer too
        RunMirror(remote, "evaluate", "reader").__enter__()
    with RunMirror(remote, "train", "worker") as worker:  # a cluster's other tasks do not
        assert worker.sync() == 0
    assert json.loads(_read(f"{remote}/{LEASE_NAME}"))["id"] == "other"  # untouched


@pytest.mark.parametrize("note", [
    {"host": "node-7", "expires": time.time() - 1},  # expired
    {"host": socket.gethostname(), "pid": 2 ** 22 + 12345, "expires": time.time() + 60},
], ids=["expired", "dead-local-holder"])
def test_a_lease_whose_holder_is_gone_is_taken_over_with_a_warning(
        note, caplog, tfnlp_logger_restored):
    remote = f"ram://remote-run-test/stale-{note['host']}"
    _lease_note(remote, **note)
    tfnlp_logger_restored.addHandler(caplog.handler)
    lease = Lease(remote, "train").acquire()
    try:
        held = json.loads(_read(f"{remote}/{LEASE_NAME}"))
        assert held["id"] == lease.note["id"] and held["expires"] > time.time()
        assert "taking over the lease left by `tfnlp train`" in caplog.text
    finally:
        lease.release()
    assert not tf.io.gfile.exists(f"{remote}/{LEASE_NAME}")
