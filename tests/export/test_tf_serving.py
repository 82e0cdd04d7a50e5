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
from tfnlp.backend import tf
from tfnlp.export import existing_versions, export_saved_model, prune_versions
from tfnlp.export.model_config import parse_models_config
from tfnlp.export.ops import CORE, TEXT, check_ops
from tfnlp.export.portable import PortablePreprocessor
from tfnlp.export.reference import CHECK_TEXTS, read_reference
from tfnlp.export.verify import saved_model_cli_command, serve_check
from tfnlp.export.warmup import read_warmup_requests
from tfnlp.training.trainer import preprocessor_of

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def portable_export(tiny_run, tmp_path_factory):
    """The tiny model exported with `portable=True` (core ops only), with warm-up requests."""
    root = tmp_path_factory.mktemp("portable")
    return export_saved_model(
        tiny_run.model, LABELS, root, "portable", portable=True,
        vocabulary=preprocessor_of(tiny_run.model).vocabulary,
        warmup_texts=["good morning", "so sad today", "我爱你"],
    )


def _examples(texts):
    return [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in texts]


def test_models_config_lists_every_model_and_is_rewritten(tiny_run, tmp_path):
    config = tiny_run.export_path.parent.parent / "models.config"
    assert parse_models_config(config) == {
        "tweets_bilstm": str(tiny_run.export_path.parent.resolve())}
    for name in ("b_model", "a_model"):
        export_saved_model(tiny_run.model, LABELS, tmp_path, name, check_ops=False)
    text = (tmp_path / "models.config").read_text()
    assert text.startswith("model_config_list {") and 'model_platform: "tensorflow"' in text
    assert parse_models_config(tmp_path / "models.config") == {
        "a_model": str((tmp_path / "a_model").resolve()),
        "b_model": str((tmp_path / "b_model").resolve()),
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_keep_prunes_the_oldest_versions(tiny_run, tmp_path):
    for _ in range(3):
        path = export_saved_model(tiny_run.model, LABELS, tmp_path, "m", keep=2, check_ops=False)
    assert path.name == "3"
    assert existing_versions(tmp_path / "m") == [2, 3]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["2", "3"]  # no leftovers
    assert prune_versions(tmp_path / "m", 1) == [2]
    assert existing_versions(tmp_path / "m") == [3]
    with pytest.raises(ValueError, match=r"`export.keep` must be a positive integer"):
        export_saved_model(tiny_run.model, LABELS, tmp_path, "m", keep=0)


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
    from tfnlp.training.run_directory import RunDirectory
    from tfnlp.training.trainer import validation_sample

    assert texts == validation_sample(RunDirectory(tiny_run.run_dir).read_config())
    classify = logs[1].classify_log.request
    assert classify.model_spec.signature_name == "classify"
    assert [e.features.feature["text"].bytes_list.value[0].decode()
            for e in classify.input.example_list.examples] == texts


def test_op_report_separates_core_and_tensorflow_text(tiny_run, portable_export):
    report = check_ops(tiny_run.export_path)
    assert report.servable and not report.portable
    assert {"FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets", "CaseFoldUTF8"} <= set(
        report.by_provider(TEXT))
    # RegexReplace normalises; ParseExampleV2 is the classify signature's parser.
    assert {"RegexReplace", "ParseExampleV2", "Softmax"} <= set(report.by_provider(CORE))
    assert report.by_provider("unknown") == []
    portable = check_ops(portable_export)
    assert portable.portable and portable.by_provider(TEXT) == []
    assert {"StringLower", "LookupTableFindV2", "While"} & set(portable.by_provider(CORE))
    assert read_reference(portable_export)["portable"] is True


def test_portable_ids_equal_the_layer_where_nfkc_and_case_folding_do_nothing(tiny_run):
    from tfnlp.config.schema import DataConfig
    from tfnlp.data import load_examples

    layer = preprocessor_of(tiny_run.model)
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
out = loaded.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                                    ("tfnlp", "tensorflow_text") and sys.modules[m])}))
"""


def test_portable_export_loads_where_tensorflow_text_cannot_be_imported(
        tiny_run, portable_export):
    result = run_python(PORTABLE_LOAD, str(portable_export), json.dumps(CHECK_TEXTS))
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["modules"] == []
    expected = tf.nn.softmax(tiny_run.model(tf.constant(CHECK_TEXTS))).numpy()
    np.testing.assert_allclose(np.array(served["probabilities"]), expected, atol=1e-5)
    # The stock `saved_model_cli` (no tensorflow-text registered) runs it too.
    run = subprocess.run(
        saved_model_cli_command(portable=True) + [
            "run", "--dir", str(portable_export), "--tag_set", "serve", "--signature_def",
            "serving_default", "--input_exprs", "text=['what a lovely day']"],
        capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "probabilities" in run.stdout


def test_non_portable_export_needs_tensorflow_text(tiny_run):
    result = run_python(PORTABLE_LOAD, str(tiny_run.export_path), json.dumps(["hi"]))
    assert result.returncode != 0
    assert "FastWordpieceTokenizeWithOffsets" in result.stderr or "Op type not registered" in (
        result.stderr)


def test_thousand_strings_and_truncation(tiny_run):
    loaded = tf.saved_model.load(str(tiny_run.export_path))
    serve = loaded.signatures["serving_default"]
    out = serve(text=tf.constant([f"tweet {i} :)" for i in range(1000)]))
    assert out["probabilities"].shape == (1000, 3) and out["label"].shape == (1000,)
    sequence_length = preprocessor_of(tiny_run.model).sequence_length
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


def test_serve_check_cli_passes_then_fails_on_a_damaged_export(tiny_run, tmp_path):
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
    result = run_cli("serve-check", str(tmp_path / "m"), timeout=600)
    assert result.returncode == 1
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "FAIL" in rows["models.config"]  # no models.config beside the copied model
    assert "FAIL" in rows["warm-up"]
    assert "FAIL" in next(line for line in result.stdout.splitlines()
                          if line.startswith("fresh process"))
    assert "PASS" in rows["signatures"]


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
    # The next export is unaffected by the leftover and takes version 1.
    result = run_cli("export", str(tiny_run.run_dir), "--export-dir", str(tmp_path),
                     "--name", "killed")
    assert result.returncode == 0, result.stderr[-2000:]
    assert existing_versions(tmp_path / "killed") == [1]
    assert "killed" in parse_models_config(tmp_path / "models.config")
