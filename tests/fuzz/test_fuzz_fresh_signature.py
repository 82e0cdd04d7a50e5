"""Property test of the exported classifier signature in a fresh process that cannot import
tfnlp: the SavedModel alone (plus TensorFlow and tensorflow-text) must answer any input.

One child process per module loads the export and answers JSON lines on stdin/stdout
(strings base64-encoded, so any bytes travel); each hypothesis example is one request.
"""

import base64
import json
import os
import queue
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import BLANK, FUZZ, HUGE, RAW_BYTES, TEXT

# The child: tfnlp is made unimportable before anything else (the editable install would
# otherwise find it whatever PYTHONPATH says), so a hidden dependency of the export on
# tfnlp's code fails here. A failed call is answered too, so the test sees the error.
CHILD = r"""
import base64, json, sys
sys.modules["tfnlp"] = None
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text ops the graph uses)

loaded = tf.saved_model.load(sys.argv[1])
signature = loaded.signatures["serving_default"]
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        texts = [base64.b64decode(text) for text in json.loads(line)]
        out = signature(text=tf.constant(texts, dtype=tf.string))
        reply = {"probabilities": out["probabilities"].numpy().tolist(),
                 "label_id": out["label_id"].numpy().tolist(),
                 "label": [label.decode() for label in out["label"].numpy()]}
    except Exception as error:
        reply = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(reply), flush=True)
"""
# Seconds to wait for one answer (loading TensorFlow on 2 busy cores is the slow part).
STARTUP_TIMEOUT, REQUEST_TIMEOUT = 240, 60


class Child:
    """The long-lived child process and a reader thread, so a hung child times out."""

    def __init__(self, export_path, log_path, cwd):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("PYTHONPATH", None)
        # stderr to a file: a pipe nobody reads would block the child once full.
        self.log = open(log_path, "wb")  # noqa: SIM115  (lives as long as the child)
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(export_path)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=cwd, text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.log_path = log_path
        assert self._answer(STARTUP_TIMEOUT) == {"ready": True}

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the child exited

    def _answer(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            self.log.flush()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"the child gave no answer (exit code {self.process.poll()}):\n{tail}")
        return json.loads(line)

    def ask(self, texts: list[bytes]) -> dict:
        request = [base64.b64encode(text).decode("ascii") for text in texts]
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._answer(REQUEST_TIMEOUT)

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def child(tiny_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fresh_signature")
    # cwd outside the repository: `python -c` puts the working directory on sys.path.
    started = Child(tiny_run.export_path, folder / "child.log", cwd=folder)
    yield started
    started.close()


def as_bytes(text) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


@FUZZ
@given(st.lists(st.one_of(TEXT, RAW_BYTES, BLANK, HUGE), min_size=1, max_size=8))
def test_fresh_process_signature_takes_anything(child, texts):
    # A HUGE text is up to 2 MB; 8 of them would be a 16 MB request, so at most one per batch.
    texts = [t for i, t in enumerate(texts) if len(t) < 10_000 or i == 0]
    reply = child.ask([as_bytes(text) for text in texts])
    assert "error" not in reply, reply.get("error")
    probabilities = np.array(reply["probabilities"])
    assert probabilities.shape == (len(texts), 3)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert reply["label_id"] == probabilities.argmax(axis=1).tolist()
    assert len(reply["label"]) == len(texts)


def test_the_child_cannot_import_tfnlp(tmp_path):
    # The guard itself: this process's interpreter finds tfnlp (editable install), the
    # child's does not, so the test above proves the export runs without tfnlp's code.
    guard = CHILD.split("import tensorflow as tf")[0]
    for prelude, importable in (("", True), (guard, False)):
        result = subprocess.run([sys.executable, "-c", prelude + "\nimport tfnlp\n"],
                                capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert (result.returncode == 0) == importable, result.stderr
    assert "import of tfnlp halted" in result.stderr, result.stderr
