"""TF-Serving readiness: models.config, keep, classify, warm-up, ops, portable exports, CLI."""

import json
import os
import signal
import subprocess
import sys
import time
import unicodedata

import numpy as np
import pytest

from tests.conftest import run_cli, run_python
from tfnlp.backend import keras, tf
from tfnlp.export import existing_versions, export_saved_model, latest_version, prune_versions
from tfnlp.export.classification import text_preprocessor
from tfnlp.export.model_config import parse_models_config
from tfnlp.export.ops import CORE, TEXT, check_ops
from tfnlp.export.portable import PortablePreprocessor
from tfnlp.export.reference import CHECK_TEXTS, read_reference
from tfnlp.export.verify import (
    check_fresh_process,
    check_models_config,
    serve_check,
)
from tfnlp.export.warmup import read_warmup_requests
from tfnlp.preprocessing import TextPreprocessor

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def portable_export(tiny_run, tmp_path_factory):
    """The tiny model exported with `portable=True` (core ops only), with warm-up requests."""
    root = tmp_path_factory.mktemp("portable")
    return export_saved_model(
        tiny_run.model, LABELS, root, "portable", portable=True,
        vocabulary=text_preprocessor(tiny_run.model).vocabulary,
        warmup_texts=["good morning", "so sad today", "我爱你"],
    )


def _examples(texts):
    return [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in texts]


@pytest.fixture(scope="module")
def light_model(tiny_run):
    """A bag-of-embeddings model on the tiny run's vocabulary: exports in a fraction of the time."""
    layer = text_preprocessor(tiny_run.model)
    preprocessor = TextPreprocessor(layer.vocabulary, sequence_length=layer.sequence_length)
    text = keras.Input(shape=(), dtype=tf.string, name="text")
    x = keras.layers.Embedding(layer.vocabulary_size, 4, mask_zero=True)(preprocessor(text))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(text, keras.layers.Dense(3)(x))


def test_models_config_and_keep(tiny_run, light_model, tmp_path):
    config = tiny_run.export_path.parent.parent / "models.config"
    assert parse_models_config(config) == {
        "tweets_bilstm": str(tiny_run.export_path.parent.resolve())}
    # Versions 1 and 2 of "m" and a model "a" exist; export "m" with keep=2.
    for version in ("m/1", "m/2", "a/4"):
        (tmp_path / version).mkdir(parents=True)
    (tmp_path / "empty").mkdir()  # no version: not listed
    path = export_saved_model(light_model, LABELS, tmp_path, "m", keep=2, check_ops=False)
    assert path.name == "3"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["2", "3"]  # no leftovers
    text = (tmp_path / "models.config").read_text()
    assert text.startswith("model_config_list {") and 'model_platform: "tensorflow"' in text
    assert parse_models_config(tmp_path / "models.config") == {
        "a": str((tmp_path / "a").resolve()), "m": str((tmp_path / "m").resolve())}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert prune_versions(tmp_path / "m", 1) == [2]
    assert existing_versions(tmp_path / "m") == [3]
    with pytest.raises(ValueError, match=r"`export.keep` must be a positive integer"):
        export_saved_model(light_model, LABELS, tmp_path, "m", keep=0)


def test_classify_signature_has_the_classify_api_form(tiny_run):
    from tensorflow.core.protobuf import saved_model_pb2

    path = tiny_run.export_path
    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def["classify"]
    assert signature.method_name == "tensorflow/serving/classify"
    assert list(signature.inputs) == ["inputs"]
    assert signature.inputs["inputs"].dtype == tf.string.as_datatype_enum
    assert set(signature.outputs) == {"classes", "scores"}
    assert signature.outputs["scores"].dtype == tf.float32.as_datatype_enum
    assert saved.meta_graphs[0].signature_def["serving_default"].method_name == (
        "tensorflow/serving/predict")
    loaded = tf.saved_model.load(str(path))  # the rewritten file (and fingerprint) still load
    texts = ["I love it", "我爱你", ""]
    out = loaded.signatures["classify"](inputs=tf.constant(_examples(texts)))
    assert out["classes"].numpy().tolist() == [[label.encode() for label in LABELS]] * 3
    expected = tf.nn.softmax(tiny_run.model(tf.constant(texts))).numpy()
    np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-5)


def test_warmup_requests_hold_real_validation_texts(tiny_run):
    logs = read_warmup_requests(tiny_run.export_path)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "classify_log"]
    predict = logs[0].predict_log.request
    assert predict.model_spec.signature_name == "serving_default"
    texts = [t.decode() for t in tf.make_ndarray(predict.inputs["text"]).tolist()]
    assert 1 <= len(texts) <= 8 and all(texts)
    # The run's validation split, in order: warm-up uses real tweets, not made-up strings.
    from tfnlp.tasks import get_task
    from tfnlp.training.run_directory import RunDirectory

    task = get_task(RunDirectory(tiny_run.run_dir).read_config())
    assert texts == task.sample_texts(task.read_data(), 8)
    classify = logs[1].classify_log.request
    assert classify.model_spec.signature_name == "classify"
    assert [e.features.feature["text"].bytes_list.value[0].decode()
            for e in classify.input.example_list.examples] == texts


def test_op_report_separates_core_and_tensorflow_text(tiny_run, portable_export):
    report = check_ops(tiny_run.export_path)
    assert report.servable and not report.portable
    assert {"FastWordpieceTokenizeWithOffsets", "CaseFoldUTF8"} <= set(
        report.by_provider(TEXT))
    # StaticRegexReplace normalises; ParseExampleV2 is the classify signature's parser.
    assert {"StaticRegexReplace", "ParseExampleV2", "Softmax"} <= set(report.by_provider(CORE))
    assert report.by_provider("unknown") == []
    portable = check_ops(portable_export)
    assert portable.portable and portable.by_provider(TEXT) == []
    assert {"StringLower", "LookupTableFindV2", "While"} & set(portable.by_provider(CORE))
    assert read_reference(portable_export)["portable"] is True


def test_portable_ids_equal_the_layer_where_nfkc_and_case_folding_do_nothing(tiny_run):
    from tfnlp.config.schema import DataConfig
    from tfnlp.data import load_examples

    layer = text_preprocessor(tiny_run.model)
    portable = PortablePreprocessor(layer)
    examples, _, _ = load_examples(DataConfig(limit=400), seed=3)
    texts = list(examples.texts) + CHECK_TEXTS + ["don't 'x' 12:30 1,000 @bob www.x.io <3 :-)",
                                                  "a" * 150 + " ok", "😀" * 40]
    expected = layer(tf.constant(texts)).numpy()
    got = tf.function(portable.__call__)(tf.constant(texts)).numpy()
    assert got.shape == expected.shape and got.dtype == np.int32

    def unaffected(text):  # what the docstring promises: identical when these agree
        nfkc = unicodedata.normalize("NFKC", text)
        return nfkc == text and nfkc.casefold() == nfkc.lower()

    same = [i for i, text in enumerate(texts) if unaffected(text)]
    assert len(same) > 300
    np.testing.assert_array_equal(got[same], expected[same])
    # Where NFKC matters the portable graph differs (documented): full-width letters.
    differs = layer(tf.constant(["ｇｏｏｄ"])).numpy(), portable(tf.constant(["ｇｏｏｄ"])).numpy()
    assert differs[0].tolist() != differs[1].tolist()


PORTABLE_LOAD = """
import json, sys
sys.modules["tensorflow_text"] = None  # importing tensorflow_text now raises ImportError
try:
    import tensorflow_text  # noqa: F401
    raise SystemExit("tensorflow_text imported")
except ImportError:
    pass
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
texts = json.loads(open(sys.argv[2], encoding="utf-8").read())
out = loaded.signatures["serving_default"](text=tf.constant(texts))
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                                    ("tfnlp", "tensorflow_text") and sys.modules[m])}))
"""


def _texts_file(directory, texts):
    path = directory / "texts.json"  # a 100 kB text is too long for a command-line argument
    path.write_text(json.dumps(texts), encoding="utf-8")
    return str(path)


def test_portable_export_loads_where_tensorflow_text_cannot_be_imported(
        tiny_run, portable_export, tmp_path):
    result = run_python(PORTABLE_LOAD, str(portable_export), _texts_file(tmp_path, CHECK_TEXTS))
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["modules"] == []
    expected = tf.nn.softmax(tiny_run.model(tf.constant(CHECK_TEXTS))).numpy()
    np.testing.assert_allclose(np.array(served["probabilities"]), expected, atol=1e-5)
    # The stock `saved_model_cli run` on it: see test_serve_check_passes_on_portable_export.


@pytest.mark.slow  # a negative control; the default run covers the positive cases
def test_non_portable_export_needs_tensorflow_text(tiny_run, tmp_path):
    result = run_python(PORTABLE_LOAD, str(tiny_run.export_path), _texts_file(tmp_path, ["hi"]))
    assert result.returncode != 0
    assert "FastWordpieceTokenizeWithOffsets" in result.stderr or "Op type not registered" in (
        result.stderr)


@pytest.mark.slow  # serve-check's "batch of 1,000" and "truncation" rows cover it by default
def test_thousand_strings_and_truncation(tiny_run):
    loaded = tf.saved_model.load(str(tiny_run.export_path))
    serve = loaded.signatures["serving_default"]
    out = serve(text=tf.constant([f"tweet {i} :)" for i in range(1000)]))
    assert out["probabilities"].shape == (1000, 3) and out["label"].shape == (1000,)
    sequence_length = text_preprocessor(tiny_run.model).sequence_length
    long, cut = " ".join(["good"] * 50 * sequence_length), " ".join(["good"] * sequence_length)
    probabilities = serve(text=tf.constant([long, cut]))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities[0], probabilities[1], atol=1e-6)


def test_serve_check_passes_on_portable_export(portable_export):
    results = serve_check(portable_export.parent)
    failed = [(r.name, r.detail) for r in results if not r.passed]
    assert failed == []
    names = [r.name for r in results]
    assert names == ["layout", "models.config", "signatures", "ops (portable)",
                     "fresh process without tensorflow_text", "batch of 1,000", "truncation",
                     "classify", "warm-up requests", "saved_model_cli show",
                     "saved_model_cli run"]


def test_serve_check_cli_passes_then_checks_fail_on_a_damaged_export(tiny_run, tmp_path):
    import shutil

    result = run_cli("serve-check", str(tiny_run.export_path.parent), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "11/11 checks passed" in result.stdout
    assert "fresh process " in result.stdout and "FAIL" not in result.stdout
    # A copy whose recorded reference disagrees with the model: the fresh-process check fails.
    damaged = tmp_path / "m" / "1"
    shutil.copytree(tiny_run.export_path, damaged)
    reference = json.loads((damaged / "assets.extra" / "tfnlp_reference.json").read_text())
    reference["probabilities"][0] = [1.0, 0.0, 0.0]
    (damaged / "assets.extra" / "tfnlp_reference.json").write_text(json.dumps(reference))
    (damaged / "assets.extra" / "tf_serving_warmup_requests").unlink()
    assert not check_models_config(damaged).passed  # no models.config beside the copy
    rows = {r.name: r for r in check_fresh_process(damaged, read_reference(damaged))}
    assert not rows["fresh process"].passed and "max |Δp|" in rows["fresh process"].detail
    assert not rows["warm-up requests"].passed
    assert rows["batch of 1,000"].passed and rows["classify"].passed


def test_cli_export_check_lists_ops(tiny_run):
    result = run_cli("export", str(tiny_run.export_path.parent), "--check")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "0 unknown" in result.stdout and "FastWordpieceTokenizeWithOffsets" in result.stdout


def test_killed_export_leaves_no_partial_version(tiny_run, tmp_path):
    command = [sys.executable, "-m", "tfnlp", "export", str(tiny_run.run_dir),
               "--export-dir", str(tmp_path), "--name", "killed"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    deadline = time.monotonic() + 240
    # Kill it while the SavedModel is being written into its hidden staging directory.
    while time.monotonic() < deadline and process.poll() is None:
        staging = list((tmp_path / "killed").glob(".tmp-export-*/saved_model/*"))
        if staging:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the export finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert existing_versions(tmp_path / "killed") == []
    assert not (tmp_path / "models.config").exists() or "killed" not in (
        tmp_path / "models.config").read_text()
    # Only the hidden staging directory is left, which TF-Serving and tfnlp ignore.
    assert [p.name.startswith(".tmp-export-") for p in (tmp_path / "killed").iterdir()] == [True]
    with pytest.raises(FileNotFoundError):
        latest_version(tmp_path / "killed")
