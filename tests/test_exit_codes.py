"""The exit status a scheduler reads: 1–127 permanent, 128 and above retryable."""

import errno

import pytest

from tfnlp import cli
from tfnlp.backend import tf
from tfnlp.config.loading import ConfigError
from tfnlp.config.schema import FieldError
from tfnlp.data.records import DataError
from tfnlp.disk import DiskFullError
from tfnlp.exit_codes import (
    FAILED,
    INTERRUPTED,
    PREEMPTED,
    RETRYABLE,
    exit_code_for,
    is_retryable,
)
from tfnlp.training.distributed import WorkerLost
from tfnlp.training.resume import Preempted, ResumeError


def raised_from(error, cause):
    try:
        raise error from cause
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(("error", "code"), [
    (ConfigError("pipelines/x.yaml: unknown key `train.epoch`"), 1),
    (FieldError("train.epochs", "a positive integer", -1), 1),
    (DataError("train.csv:3: missing text"), 1),
    (ResumeError("runs/x/backup: no intact backup to resume from"), 1),
    (DiskFullError("runs/x: the disk filled"), 1),
    (tf.errors.ResourceExhaustedError(None, None, "write failed: No space left on device"), 1),
    (OSError(errno.ENOSPC, "No space left on device"), 1),
    (OSError(errno.ENOENT, "No such file or directory"), 1),
    (PermissionError(errno.EACCES, "Permission denied"), 1),
    (RuntimeError("something unforeseen"), 1),
    (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"), 1),
    (WorkerLost("worker 1 (/job:worker/replica:0/task:1) stopped answering"), 129),
    (tf.errors.UnavailableError(None, None, "Socket closed"), 129),
    (tf.errors.DeadlineExceededError(None, None, "Collective ops timed out"), 129),
    (tf.errors.AbortedError(None, None, "Collective ops is aborted by: peer failed"), 129),
    (tf.errors.CancelledError(None, None, "Cancelled"), 129),
    (OSError(errno.EIO, "Input/output error"), 129),
    (OSError(errno.ETIMEDOUT, "Connection timed out"), 129),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), 129),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), 129),
    (BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"), 129),
    (KeyboardInterrupt(), 130),
    (Preempted("runs/x/backup: stopped by SIGTERM (preemption) after epoch 2, step 7"), 143),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value))
def test_each_error_kind_has_its_exit_code(error, code):
    assert exit_code_for(error) == code


def test_an_unknown_error_takes_the_code_of_the_error_it_was_raised_from():
    assert exit_code_for(raised_from(RuntimeError("wrapped"), OSError(errno.EIO, "I/O"))) == 129
    assert exit_code_for(raised_from(RuntimeError("wrapped"), ValueError("bad"))) == 1
    # A known kind decides for itself: data that cannot be read as configured stays bad data.
    assert exit_code_for(raised_from(DataError("x.csv: unreadable"), OSError(errno.EIO, ""))) == 1


def test_codes_from_128_up_are_the_retryable_ones():
    assert [is_retryable(code) for code in (FAILED, 2, 127)] == [False] * 3
    assert [is_retryable(code) for code in (RETRYABLE, INTERRUPTED, PREEMPTED)] == [True] * 3


def failing_with(error):
    def handler(args):
        raise error

    return handler


def test_the_cli_exits_with_the_code_and_hints_at_a_retry_only_when_it_is_one(monkeypatch,
                                                                              capsys):
    monkeypatch.setattr(cli, "_validate", failing_with(OSError(errno.EIO, "Input/output error")))
    assert cli.main(["validate", "any.yaml"]) == 129
    assert capsys.readouterr().err == (
        "tfnlp: error: [Errno 5] Input/output error (retryable: exit 129)\n")

    monkeypatch.setattr(cli, "_validate", failing_with(Preempted("stopped by SIGTERM")))
    assert cli.main(["validate", "any.yaml"]) == 143
    assert capsys.readouterr().err == "tfnlp: error: stopped by SIGTERM (retryable: exit 143)\n"

    monkeypatch.setattr(cli, "_validate", failing_with(DataError("train.csv:3: missing text")))
    assert cli.main(["validate", "any.yaml"]) == 1
    assert capsys.readouterr().err == "tfnlp: error: train.csv:3: missing text\n"


def test_debug_keeps_the_exit_code_and_adds_the_traceback(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_validate", failing_with(WorkerLost("worker 1 stopped answering")))
    assert cli.main(["--debug", "validate", "any.yaml"]) == 129
    err = capsys.readouterr().err
    assert "Traceback" in err and "WorkerLost" in err
    assert err.endswith("tfnlp: error: worker 1 stopped answering (retryable: exit 129)\n")
