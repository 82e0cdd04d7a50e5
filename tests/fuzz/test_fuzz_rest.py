"""Property tests of `tfnlp serve`'s REST endpoint, over HTTP to a real server process.

Arbitrary JSON bodies and arbitrary bytes POSTed to `:predict` and `:classify` never get a
5xx and always get a JSON body: a valid TF-Serving request gets 200 with one prediction per
input, anything else a 4xx with `{"error": "..."}`. The server runs in its own process (not
Starlette's in-process TestClient) because some inputs abort the process from TensorFlow's
C++ code: a crash must fail one test, not end the whole pytest session.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import BLANK, DEPTH, DIGITS, FUZZ, RAW_BYTES, TEXT
from tfnlp.training.cluster import free_ports

MODEL = "tweets_bilstm"
PREDICT = st.sampled_from([f"/{MODEL}:predict", f"/{MODEL}/versions/1:predict"])
CLASSIFY = st.sampled_from([f"/{MODEL}:classify", f"/{MODEL}/versions/1:classify"])
# Arbitrary inputs are not shrunk: each shrinking step that crashes the server would cost a
# restart (~10 s); the pinned requests at the end are the minimal cases found so far.
NO_SHRINK = settings(FUZZ, phases=[phase for phase in FUZZ.phases if phase is not Phase.shrink])


class Server:
    """`tfnlp serve` in a child process; a request that kills it fails, and it is restarted.

    One connection per request (no keep-alive): a dropped connection then means the server
    failed, not that an idle connection timed out between examples.
    """

    def __init__(self, root, log_path):
        self.root, self.log_path = root, log_path
        self._start()

    def _start(self):
        (port,) = free_ports(1)
        self.base = f"http://127.0.0.1:{port}/v1/models"
        # A file: a pipe nobody reads would block the server once full.
        self.log = open(self.log_path, "wb")  # noqa: SIM115  (lives as long as the server)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfnlp", "serve", str(self.root), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=self.log,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        deadline = time.monotonic() + 240
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(self.base + "/", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.3)
        raise RuntimeError(f"tfnlp serve did not start:\n{self.log_tail()}")

    def log_tail(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def post(self, path, body: bytes) -> httpx.Response:
        try:
            return httpx.post(self.base + path, content=body, timeout=120,
                              headers={"content-type": "application/json"})
        except httpx.TransportError:
            try:
                code = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = "none: alive but not answering"
            message = (f"tfnlp serve failed (exit code {code}) on a {len(body)}-byte request "
                       f"to {path}: {body[:200]!r}\n{self.log_tail()}")
            self.close()
            self._start()
            raise AssertionError(message) from None

    def close(self):
        self.process.kill()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_rest") / "saved_models"
    shutil.copytree(tiny_run.export_path, root / MODEL / "1")
    started = Server(root, root.parent / "serve.log")
    yield started
    started.close()


def post(server, path, body: bytes):
    """POSTs `body`; checks the answer is JSON, never a 5xx, and an error is {"error": ...}."""
    response = server.post(path, body)
    assert response.status_code < 500, (response.status_code, response.text[:500],
                                        server.log_tail()[-1500:])
    assert response.headers["content-type"].startswith("application/json"), response.text[:500]
    answer = response.json()
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        assert set(answer) == {"error"} and isinstance(answer["error"], str) \
            and answer["error"], answer
    return response.status_code, answer


def check_probabilities(probabilities, label_ids):
    probabilities = np.array(probabilities, dtype=float)
    assert probabilities.ndim == 2 and probabilities.shape[1] == 3
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert list(label_ids) == probabilities.argmax(axis=1).tolist()


# Valid TF-Serving requests -------------------------------------------------------------------

B64 = RAW_BYTES.map(lambda raw: {"b64": base64.b64encode(raw).decode("ascii")})
INPUT = st.one_of(TEXT, BLANK, B64)
INPUTS = st.lists(INPUT, min_size=1, max_size=8)
PREDICT_BODY = st.one_of(
    INPUTS.map(lambda values: {"instances": values}),
    INPUTS.map(lambda values: {"instances": [{"text": v} for v in values]}),
    INPUTS.map(lambda values: {"inputs": {"text": values}}),
    INPUTS.map(lambda values: {"inputs": values}),
)


def with_signature(body, name):
    return body if name is None else {**body, "signature_name": name}


@FUZZ
@given(PREDICT, PREDICT_BODY, st.sampled_from([None, "serving_default"]))
def test_a_valid_predict_request_gets_one_prediction_per_input(server, path, body, signature):
    body = with_signature(body, signature)
    status, answer = post(server, path, json.dumps(body).encode())
    assert status == 200, answer
    values = body.get("instances", body.get("inputs"))
    count = len(values["text"] if isinstance(values, dict) else values)
    if "instances" in body:
        rows = answer["predictions"]
        assert len(rows) == count
        check_probabilities([r["probabilities"] for r in rows], [r["label_id"] for r in rows])
    else:
        outputs = answer["outputs"]
        assert len(outputs["label"]) == count
        check_probabilities(outputs["probabilities"], outputs["label_id"])


@FUZZ
@given(CLASSIFY, st.lists(st.one_of(TEXT, BLANK), min_size=1, max_size=8),
       st.sampled_from([None, "classify"]))
def test_a_valid_classify_request_gets_one_result_per_example(server, path, texts, signature):
    body = with_signature({"examples": [{"text": t} for t in texts]}, signature)
    status, answer = post(server, path, json.dumps(body).encode())
    assert status == 200, answer
    results = answer["results"]
    assert len(results) == len(texts)
    assert all(len(result) == 3 and all(isinstance(c, str) for c, _ in result)
               for result in results)
    scores = [[score for _, score in result] for result in results]
    check_probabilities(scores, np.argmax(scores, axis=1).tolist())


# Arbitrary requests --------------------------------------------------------------------------

# JSON leaves, including what strict decoders trip on: lone surrogates (legal as \ud800
# escapes), NaN and the infinities (Python's json reads them), big integers.
LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), TEXT, BLANK,
    st.sampled_from(["\ud800", "a\udfffb"]),
    st.one_of(st.text(max_size=12), st.integers(), st.none()).map(lambda v: {"b64": v}), B64,
)
JSON = st.recursive(LEAF, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5),
), max_leaves=20)
NAME = st.one_of(st.sampled_from(["serving_default", "classify", "nope"]), JSON)
# Bodies shaped like requests (the keys the server reads) with arbitrary values, or anything.
BODY = st.one_of(
    st.fixed_dictionaries({}, optional={"instances": JSON, "inputs": JSON, "examples": JSON,
                                        "signature_name": NAME}),
    st.fixed_dictionaries({"instances": st.lists(JSON, max_size=5)},
                          optional={"signature_name": NAME}),
    st.fixed_dictionaries({"examples": st.lists(JSON, max_size=5)},
                          optional={"signature_name": NAME}),
    JSON,
)


@NO_SHRINK
@given(st.one_of(PREDICT, CLASSIFY), BODY)
def test_any_json_body_gets_a_json_answer_and_never_a_5xx(server, path, body):
    status, answer = post(server, path, json.dumps(body).encode())
    if not isinstance(body, dict):
        assert status == 400, answer
    if status != 200:
        return
    # A 200 answers every input: one row per instance, one result per example.
    if path.endswith(":classify"):
        assert len(answer["results"]) == len(body["examples"])
    elif "instances" in body:
        assert len(answer["predictions"]) == len(body["instances"])
    else:
        assert isinstance(answer["outputs"], dict)


RAW_BODY = st.one_of(
    RAW_BYTES,
    DEPTH.map(lambda depth: b"[" * depth + b"]" * depth),
    DEPTH.map(lambda depth: b'{"instances": ' + b"[" * depth + b'"x"' + b"]" * depth + b"}"),
    DIGITS.map(lambda digits: b'{"instances": [' + b"9" * digits + b"]}"),
    RAW_BYTES.map(lambda raw: b'{"instances": ["' + raw + b'"]}'),
)


@NO_SHRINK
@given(st.one_of(PREDICT, CLASSIFY), RAW_BODY)
def test_any_bytes_body_gets_a_json_answer_and_never_a_5xx(server, path, body):
    post(server, path, body)


# The smallest requests the targets above found (and one TF-Serving's documentation shows),
# pinned so each fix is checked.
@pytest.mark.parametrize("path, body, status", [
    pytest.param(":predict", '{"instances": [{"b64": 1}]}', 400, id="b64-not-a-string"),
    pytest.param(":predict", '{"instances": [{"b64": "YQ"}]}', 400, id="b64-bad-padding"),
    pytest.param(":predict", '{"instances": ["a"], "signature_name": []}', 400,
                 id="predict-unhashable-signature-name"),
    pytest.param(":classify", '{"examples": [{"text": "a"}], "signature_name": {}}', 400,
                 id="classify-unhashable-signature-name"),
    pytest.param(":classify", '{"examples": [1]}', 400, id="example-not-an-object"),
    pytest.param(":classify", '{"examples": [{"text": "\\ud800"}]}', 400,
                 id="lone-surrogate-example"),
    pytest.param(":classify", '{"examples": [{"text": "a"}], "signature_name": '
                              '"serving_default"}', 400, id="classify-on-predict-signature"),
    pytest.param(":predict", "[" * 5000 + "]" * 5000, 400, id="deep-body"),
    # 33 nested lists: the signature runs on a rank-33 tensor (its [None] shape is not
    # enforced) and an op in the graph crashes the whole server (SIGSEGV).
    pytest.param(":predict", '{"instances": ' + "[" * 33 + '"x"' + "]" * 33 + "}", 400,
                 id="33-dimensional-instances"),
    # 255 nested lists: tf.constant's CHECK on the rank aborts the whole server (SIGABRT).
    pytest.param(":predict", '{"instances": ' + "[" * 255 + '"x"' + "]" * 255 + "}", 400,
                 id="255-dimensional-instances"),
    pytest.param(":predict", '{"instances": [' + "9" * 4301 + "]}", 400, id="4301-digits"),
    # Found by CI's deep run: the error message quoted the name, which UTF-8 cannot encode.
    pytest.param(":predict", '{"instances": ["a"], "signature_name": "\\ud800"}', 400,
                 id="lone-surrogate-signature-name"),
    # TF-Serving's REST API takes {"b64": ...} wherever a string goes, named inputs included.
    pytest.param(":predict", '{"instances": [{"text": {"b64": "aGk="}}]}', 200,
                 id="b64-named-instance"),
    pytest.param(":predict", '{"inputs": {"text": [{"b64": "aGk="}]}}', 200,
                 id="b64-named-column"),
])
def test_found_requests_get_the_right_answer(server, path, body, status):
    assert post(server, f"/{MODEL}{path}", body.encode())[0] == status
