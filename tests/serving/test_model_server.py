"""A real `tensorflow_model_server` against `saved_models/`: REST and gRPC answers compared.

Skipped, with the reason, when no `tensorflow_model_server` binary is on PATH (it is not a pip
package; install it from TF-Serving's apt repository or use the Docker image).
"""

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from tfnlp.backend import tf

SERVER = shutil.which("tensorflow_model_server")
pytestmark = pytest.mark.skipif(
    SERVER is None, reason="no tensorflow_model_server on PATH: the integration test needs one")
TEXTS = ["I love this car :)", "worst traffic ever", "我爱北京天安门", "😀", ""]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tiny_run):
    root = tiny_run.export_path.parent.parent
    grpc_port, rest_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [SERVER, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={root / 'models.config'}", "--enable_batching",
         f"--batching_parameters_file={root / 'batching_parameters.txt'}",
         f"--monitoring_config_file={root / 'monitoring.config'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    status_url = f"http://127.0.0.1:{rest_port}/v1/models/tweets_bilstm"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"tensorflow_model_server exited: {process.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(status_url, timeout=5) as response:
                states = [v["state"] for v in json.loads(response.read())["model_version_status"]]
            if "AVAILABLE" in states:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("tensorflow_model_server did not make the model AVAILABLE in 120 s")
        time.sleep(0.5)
    yield {"grpc": f"127.0.0.1:{grpc_port}", "rest": f"http://127.0.0.1:{rest_port}"}
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def expected(tiny_run):
    return tf.nn.softmax(tiny_run.model(tf.constant(TEXTS))).numpy()


def test_rest_row_columnar_and_classify(server, expected):
    url = f"{server['rest']}/v1/models/tweets_bilstm"
    rows = _post(f"{url}:predict", {"instances": TEXTS})["predictions"]
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected, atol=1e-5)
    assert [r["label_id"] for r in rows] == expected.argmax(axis=1).tolist()
    columns = _post(f"{url}:predict", {"inputs": {"text": TEXTS}})["outputs"]
    np.testing.assert_allclose(columns["probabilities"], expected, atol=1e-5)
    results = _post(f"{url}:classify", {"signature_name": "classify",
                                        "examples": [{"text": t} for t in TEXTS]})["results"]
    assert [[label for label, _ in row] for row in results] == [
        ["negative", "neutral", "positive"]] * len(TEXTS)
    np.testing.assert_allclose([[s for _, s in row] for row in results], expected, atol=1e-5)


def test_grpc_predict_and_classify(server, expected):
    import grpc
    from tensorflow_serving.apis import (
        classification_pb2,
        input_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(server["grpc"]))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tweets_bilstm"
    request.model_spec.signature_name = "serving_default"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(TEXTS, dtype=tf.string))
    response = stub.Predict(request, timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected,
                               atol=1e-5)
    examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[t.encode()]))})) for t in TEXTS]
    request = classification_pb2.ClassificationRequest(
        input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples)))
    request.model_spec.name = "tweets_bilstm"
    request.model_spec.signature_name = "classify"
    result = stub.Classify(request, timeout=60).result
    scores = [[c.score for c in row.classes] for row in result.classifications]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
