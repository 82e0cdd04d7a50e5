import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from tfnlp.evaluation.side_process import SideProcess, prestart


def where_and_what():
    """(this process's id, whether TensorFlow is loaded in it)."""
    return os.getpid(), "tensorflow" in sys.modules


def loaded_libraries():
    """(this process's id, which of the side process's libraries and TensorFlow it has)."""
    names = ("matplotlib.pyplot", "sklearn.linear_model", "tensorflow")
    return os.getpid(), [name for name in names if name in sys.modules]


def fail(message):
    raise ValueError(message)


def die_unless_in(pid):
    """Kills any process but `pid` on the spot, as an out-of-memory kill would."""
    if os.getpid() != pid:
        os._exit(3)
    return "finished in the parent"


def test_calls_run_in_one_spawned_process_without_tensorflow_and_resolve_in_place():
    with SideProcess() as side:
        first, second = side.submit(where_and_what), side.submit(where_and_what)
        metrics = side.resolved({"a": {"b": first}, "c": [second, 7]})
    (pid, tensorflow), (pid_again, _) = metrics["a"]["b"], metrics["c"][0]
    assert pid != os.getpid() and pid == pid_again
    assert tensorflow is False
    assert metrics["c"][1] == 7


def test_disabled_runs_each_call_at_once_in_this_process():
    with SideProcess(enabled=False) as side:
        future = side.submit(where_and_what)
        assert future.done() and future.result()[0] == os.getpid()
        assert side.resolved({"x": future})["x"] == future.result()


def test_an_error_in_a_call_is_raised_when_resolved():
    with SideProcess() as side:
        metrics = {"x": side.submit(fail, "bad input in side work")}
        with pytest.raises(ValueError, match="bad input in side work"):
            side.resolved(metrics)


def test_a_child_that_dies_leaves_its_work_to_this_process(caplog):
    with caplog.at_level(logging.WARNING), SideProcess() as side:
        metrics = {"x": side.submit(die_unless_in, os.getpid())}
        assert side.resolved(metrics) == {"x": "finished in the parent"}
        assert side.submit(die_unless_in, os.getpid()).result() == "finished in the parent"
    assert "the side process failed (BrokenProcessPool" in caplog.text


def test_a_prestarted_child_has_its_libraries_loaded_and_serves_the_next_side_process():
    prestart()
    with SideProcess() as side:
        prestarted = side.submit(loaded_libraries).result()
    with SideProcess() as later:  # taken once: a later side process spawns its own
        fresh = later.submit(loaded_libraries).result()
    assert prestarted[0] != fresh[0] and os.getpid() not in (prestarted[0], fresh[0])
    assert prestarted[1] == ["matplotlib.pyplot", "sklearn.linear_model"]
    assert fresh[1] == []


KILLED_PARENT = """
import os, sys, time
from tfnlp.evaluation.side_process import SideProcess, prestart
if __name__ == "__main__":
    prestart()
    side = SideProcess()
    print(side.submit(os.getpid).result(), flush=True)
    time.sleep(600)
"""


def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(KILLED_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        parent.stdout.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child), f"side process {child} outlived its killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited child of a dead parent is reaped by init; a zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True
