"""`tfnlp compress` end to end on the tiny run: every artifact written, measured and usable.

Slow (a dozen TFLite conversions of a BiLSTM, ~1 min each on a busy 2-core machine): run with
`pytest -m slow tests/compression`. Each pass also has a fast test of its own.
"""

import json

import numpy as np
import pytest

from tests.conftest import REPO, TINY_OVERRIDES, run_cli

pytestmark = pytest.mark.slow

FAST = [
    "compression.epochs=1",
    "compression.qat=false",
    "compression.pruning_preserving_qat=false",
    "compression.int16x8=false",
    "compression.latency_calls=20",
    "compression.throughput_calls=2",
    "compression.representative_examples=64",
]
REQUIRED = ("float32", "pruned", "pruned_int8", "int8_dynamic", "int8_full", "float16")


@pytest.fixture(scope="module")
def compressed(tiny_run, tmp_path_factory):
    from tfnlp.compression.pipeline import compress_run
    from tfnlp.config import load_pipeline

    out = tmp_path_factory.mktemp("compressed")
    config = load_pipeline(REPO / "pipelines" / "tweets_bilstm.yaml", TINY_OVERRIDES + FAST)
    return compress_run(config, tiny_run.run_dir, out), out


def test_report_has_every_artifact_measured(compressed):
    result, out = compressed
    saved = json.loads((out / "compression_report.json").read_text())
    assert saved["recommended"] == result["recommended"]
    artifacts = saved["artifacts"]
    for name in REQUIRED:
        entry = artifacts[name]
        assert entry["format"] == "tflite"
        assert 0.0 <= entry["accuracy"] <= 1.0 and 0.0 <= entry["macro_f1"] <= 1.0
        assert entry["bytes"] == (out / "tflite" / name / "model.tflite").stat().st_size
        assert 0 < entry["gzip_bytes"] < entry["bytes"]
        assert entry["latency_ms_batch1"] > 0 and entry["throughput_batch64"] > 0
    assert {"saved_model_float32", "saved_model_pruned"} <= set(artifacts)
    # The string-in SavedModel classifies the test split exactly as the float32 TFLite model.
    assert artifacts["saved_model_float32"]["accuracy"] == artifacts["float32"]["accuracy"]
    # Sparsity shows as bytes once compressed; int8 is smaller than float32 on disk.
    assert artifacts["pruned"]["sparsity"] > 0.7
    assert artifacts["pruned"]["gzip_bytes"] < artifacts["float32"]["gzip_bytes"]
    assert artifacts["int8_dynamic"]["bytes"] < artifacts["float32"]["bytes"]
    assert artifacts["int8_full"]["tensor_dtypes"].get("int8", 0) > 0
    # The recommendation is never slower than float32 nor outside the budget.
    best = artifacts[saved["recommended"]]
    assert best["latency_ms_batch1"] <= artifacts["float32"]["latency_ms_batch1"]
    assert best["accuracy"] >= artifacts["float32"]["accuracy"] - saved["accuracy_budget"]
    assert saved["passes"]["pruning"]["pruned_layers"] == ["embedding", "bilstm_0", "logits"]
    # The BiLSTM is unrolled for TFLite (no WHILE loops); the report explains int8 speed.
    assert "WHILE" not in artifacts["int8_full"]["ops"]["ops"]
    assert artifacts["int8_full"]["conversion"]["unrolled"] is True
    assert any("unrolled" in note and "XNNPACK" in note for note in saved["notes"])
    assert (out / "compression_report.md").read_text().count("| int8_full |") == 1
    assert (out / "size_vs_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_reported_accuracy_is_recomputed_from_the_artifact(compressed, tiny_run):
    from tfnlp.compression.tflite import TFLiteClassifier
    from tfnlp.compression.tflite_predictor import TFLitePredictor
    from tfnlp.data import encode_labels
    from tfnlp.tasks.classification import ClassificationTask
    from tfnlp.training.run_directory import RunDirectory

    result, out = compressed
    config = RunDirectory(tiny_run.run_dir).read_config()
    data = ClassificationTask(config).read_data()  # the run's split, read without writing
    splits, labels = data.splits, data.labels
    predictor = TFLitePredictor(out / "tflite" / "int8_full")
    probabilities = predictor.probabilities(list(splits.test.texts))
    y_test = encode_labels(splits.test, labels)
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
    # The batch-1 file via the predictor and the batch-64 file via the report agree.
    assert accuracy == pytest.approx(
        result["artifacts"]["int8_full"]["accuracy"], abs=1 / len(y_test) + 1e-9
    )
    batch64 = TFLiteClassifier((out / "tflite" / "int8_full" / "model_batch64.tflite").read_bytes())
    assert batch64.batch_size == 64


def test_predict_accepts_tflite_and_compressed_saved_model(compressed, tiny_run):
    _, out = compressed
    labels = json.loads((tiny_run.run_dir / "labels.json").read_text())
    for target in (
        out / "tflite" / "pruned_int8" / "model.tflite",
        out / "saved_models" / "tweets_bilstm_pruned",
    ):
        process = run_cli("predict", str(target), "what a great day", "this is awful")
        assert process.returncode == 0, process.stderr
        rows = [json.loads(line) for line in process.stdout.splitlines()]
        assert len(rows) == 2 and all(row["label"] in labels for row in rows)


def test_compress_refuses_a_mismatched_pipeline(tiny_run, tmp_path):
    process = run_cli(
        "compress",
        str(REPO / "pipelines" / "tweets_bilstm.yaml"),
        "--from",
        str(tiny_run.run_dir),
        "--out",
        str(tmp_path / "x"),
    )
    assert process.returncode == 1
    assert "differs from the run" in process.stderr and "Traceback" not in process.stderr
