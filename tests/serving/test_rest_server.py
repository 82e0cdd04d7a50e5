"""`tfnlp serve` on loopback, through a real HTTP client (httpx): TF-Serving's REST contract,
its error answers, path safety, and a version appearing while requests run."""

import base64
import os
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from tfnlp.bench.serve import start_server
from tfnlp.export.model_config import write_version_labels
from tfnlp.serving import ExportPredictor

TEXTS = ["I love this car :)", "worst traffic ever", "我爱北京天安门", "😀", ""]
LIMIT = 20_000  # --max-request-bytes, small so the 413 test stays small


@pytest.fixture(scope="module")
def root(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve") / "saved_models"
    shutil.copytree(tiny_run.export_path, root / "tweets_bilstm" / "1")
    return root


@pytest.fixture(scope="module")
def url(root):
    process, base = start_server(root, "--max-request-bytes", str(LIMIT))
    yield base
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def expected(root):
    return ExportPredictor(root / "tweets_bilstm").probabilities(TEXTS)


def test_row_columnar_b64_and_classify_equal_the_in_process_model(url, expected):
    model = f"{url}/tweets_bilstm"
    rows = httpx.post(f"{model}:predict", json={"instances": TEXTS}, timeout=60).json()
    np.testing.assert_allclose([r["probabilities"] for r in rows["predictions"]], expected,
                               atol=1e-6)
    assert [r["label_id"] for r in rows["predictions"]] == expected.argmax(axis=1).tolist()
    columns = httpx.post(f"{model}:predict", json={"inputs": {"text": TEXTS}}, timeout=60)
    np.testing.assert_allclose(columns.json()["outputs"]["probabilities"], expected, atol=1e-6)
    b64 = [{"b64": base64.b64encode(t.encode()).decode()} for t in TEXTS]
    encoded = httpx.post(f"{model}:predict", json={"instances": b64}, timeout=60).json()
    np.testing.assert_allclose([r["probabilities"] for r in encoded["predictions"]], expected,
                               atol=1e-6)
    results = httpx.post(f"{model}:classify", timeout=60, json={
        "signature_name": "classify", "examples": [{"text": t} for t in TEXTS]}).json()
    np.testing.assert_allclose([[s for _, s in r] for r in results["results"]], expected,
                               atol=1e-6)
    assert [c for c, _ in results["results"][0]] == ["negative", "neutral", "positive"]


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/nope:predict", {"instances": ["x"]}, 404, "Servable not found"),
    ("POST", "/tweets_bilstm:predict", b"{not json", 400, "JSON Parse error"),
    ("POST", "/tweets_bilstm:predict", {"signature_name": "x", "instances": ["a"]}, 400,
     'Serving signature name: "x" not found'),
    ("POST", "/tweets_bilstm:predict", {"instances": []}, 400, "non-empty list"),
    ("POST", "/tweets_bilstm:predict", {"instances": ["x" * LIMIT]}, 413, "limit"),
    ("POST", "/..%2F..%2Fetc:predict", {"instances": ["x"]}, 404, "Malformed request"),
    ("POST", "/..:predict", {"instances": ["x"]}, 400, "Malformed model name"),
    ("GET", "/%2Fetc%2Fpasswd", None, 404, "Malformed request"),
    ("GET", "/tweets_bilstm/versions/7", None, 404, "Specific(tweets_bilstm, 7)"),
    ("GET", "/tweets_bilstm/labels/canary", None, 404, "version label: canary"),
])
def test_bad_requests_get_tf_serving_error_bodies(url, method, path, body, status, message):
    content = body if isinstance(body, bytes) else None
    response = httpx.request(method, url + path, json=None if content else body,
                             content=content, timeout=60)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_status_metadata_and_labels(url, root):
    status = httpx.get(f"{url}/tweets_bilstm", timeout=60).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    meta = httpx.get(f"{url}/tweets_bilstm/metadata", timeout=60).json()
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify"} <= set(signatures)
    assert signatures["classify"]["methodName"] == "tensorflow/serving/classify"
    write_version_labels(root / "tweets_bilstm", {"stable": 1})
    labelled = httpx.post(f"{url}/tweets_bilstm/labels/stable:predict",
                          json={"instances": ["hi"]}, timeout=60)
    assert labelled.status_code == 200
    write_version_labels(root / "tweets_bilstm", {})


def test_a_version_appearing_while_requests_run_is_served_only_once_complete(url, root):
    model_dir = root / "tweets_bilstm"
    answers, stop = [], threading.Event()

    def client():
        with httpx.Client(timeout=60) as session:
            while not stop.is_set() and len(answers) < 200:
                answers.append(session.post(f"{url}/tweets_bilstm:predict",
                                            json={"instances": TEXTS[:2]}).status_code)

    thread = threading.Thread(target=client)
    thread.start()
    staging = model_dir / ".tmp-export-copy"
    shutil.copytree(model_dir / "1", staging)  # half-written from the server's point of view
    time.sleep(0.5)
    os.rename(staging, model_dir / "2")  # published the way `publish` does
    time.sleep(1.0)
    stop.set()
    thread.join(timeout=120)
    assert answers and set(answers) == {200}
    versions = httpx.get(f"{url}/tweets_bilstm/versions/2", timeout=60).json()
    assert versions["model_version_status"][0]["version"] == "2"


@pytest.mark.slow  # 2 x 2,000 requests from 16 clients on 2 shared cores; run with -m slow
def test_load_2000_requests_from_16_clients_lose_nothing(root, tmp_path):
    from tfnlp.bench.serve import bench_serve

    report = bench_serve(root, "tweets_bilstm", tmp_path, requests=2000, clients=16, batch=8)
    for run in report["runs"].values():
        assert (run["errors"], run["lost"], run["duplicated"]) == (0, 0, 0)
        assert run["requests"] == 2000 and run["latency_ms_p99"] >= run["latency_ms_p50"] > 0
    assert (tmp_path / "bench_serve.png").stat().st_size > 0
