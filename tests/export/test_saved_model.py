import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import run_cli, run_python
from tfnlp.backend import tf
from tfnlp.export import check_model_name, existing_versions, export_saved_model, latest_version
from tfnlp.export.versions import model_directory

TEXTS = ["I love this car :)", "worst traffic ever", "我爱北京天安门", "😀😀😀", "",
         "x" * 100_000]

# Runs in a fresh interpreter that never imports tfnlp: TensorFlow + tensorflow-text only.
FRESH_LOAD = """
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the text ops)
assert "tfnlp" not in sys.modules
loaded = tf.saved_model.load(sys.argv[1])
texts = json.loads(sys.argv[2])
out = loaded.signatures["serving_default"](text=tf.constant(texts))
print(json.dumps({
    "probabilities": out["probabilities"].numpy().tolist(),
    "label_id": out["label_id"].numpy().tolist(),
    "label": [l.decode() for l in out["label"].numpy()],
    "tfnlp_imported": "tfnlp" in sys.modules,
}))
"""


def test_export_layout_and_signature(tiny_run):
    path = tiny_run.export_path
    assert path.name == "1" and path.parent.name == "tweets_bilstm"
    assert (path / "saved_model.pb").is_file()
    assert (path / "assets" / "vocab.txt").read_text().split("\n")[:2] == ["[PAD]", "[UNK]"]
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    assert signature.structured_input_signature[1]["text"].shape.as_list() == [None]
    assert set(signature.structured_outputs) == {"probabilities", "label_id", "label"}
    assert [n.decode() for n in loaded.label_names.numpy()] == ["negative", "neutral", "positive"]


def test_both_signatures_share_one_trace_of_the_model(tiny_run):
    from tfnlp.export.classification import ClassifierServingModule

    module = ClassifierServingModule(tiny_run.model, ["negative", "neutral", "positive"])
    for function in module.signatures().values():
        function.get_concrete_function()
    assert module.traced_probabilities.experimental_get_tracing_count() == 1


def test_export_carries_the_cudnn_lstm_twins_for_gpu_serving(tiny_run):
    # Training on this CPU host skipped them (tfnlp.backend); the export leaves the host.
    # Grappler's implementation selector swaps a call to an inference function for the one of
    # the same `api_implements` whose `api_preferred_device` is the node's device, if their
    # argument types match; these are the conditions checked here.
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString(
        (tiny_run.export_path / "saved_model.pb").read_bytes())
    library = saved.meta_graphs[0].graph_def.library.function
    by_interface = {}
    for function in library:
        attrs = function.attr
        assert "forward_function_name" not in attrs, function.signature.name  # no gradients
        assert "backward_function_name" not in attrs, function.signature.name
        if "api_implements" in attrs:
            signature = ([arg.type for arg in function.signature.input_arg],
                         [arg.type for arg in function.signature.output_arg])
            by_interface.setdefault(attrs["api_implements"].s, {})[
                attrs["api_preferred_device"].s] = (function.signature.name, signature)
    assert by_interface, "no LSTM implementations in the export"
    for twins in by_interface.values():
        assert set(twins) == {b"CPU", b"GPU"}, twins
        (cpu_name, cpu_signature), (gpu_name, gpu_signature) = twins[b"CPU"], twins[b"GPU"]
        assert cpu_name.startswith("__inference_standard_lstm")
        assert gpu_name.startswith("__inference_gpu_lstm_with_fallback")
        assert cpu_signature == gpu_signature


def test_fresh_process_without_tfnlp_matches_training_model(tiny_run):
    result = run_python(FRESH_LOAD, str(tiny_run.export_path), json.dumps(TEXTS))
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["tfnlp_imported"] is False
    expected = tf.nn.softmax(tiny_run.model(tf.constant(TEXTS))).numpy()
    probabilities = np.array(served["probabilities"], dtype=np.float32)
    assert probabilities.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert served["label_id"] == expected.argmax(axis=1).tolist()
    assert served["label"] == [["negative", "neutral", "positive"][i] for i in served["label_id"]]


def test_saved_model_cli_show_and_run(tiny_run):
    cli = shutil.which("saved_model_cli") or os.path.join(os.path.dirname(sys.executable),
                                                          "saved_model_cli")
    show = subprocess.run([cli, "show", "--all", "--dir", str(tiny_run.export_path)],
                          capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "serving_default" in show.stdout and "DT_STRING" in show.stdout
    # `saved_model_cli run` executes the graph, so the tensorflow-text ops must be registered
    # first (TF-Serving links them in; the CLI does not): the same tool, text ops loaded.
    with_text_ops = ("import sys, tensorflow_text; sys.argv[0] = 'saved_model_cli'; "
                     "from tensorflow.python.tools.saved_model_cli import main; main()")
    run = subprocess.run(
        [sys.executable, "-c", with_text_ops, "run", "--dir", str(tiny_run.export_path),
         "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", "text=['what a lovely day']"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "probabilities" in run.stdout and "label_id" in run.stdout


def test_versions_increment_and_partial_exports_are_invisible(tiny_run, tmp_path):
    model, labels = tiny_run.model, ["negative", "neutral", "positive"]
    first = export_saved_model(model, labels, tmp_path, "m")
    (tmp_path / "m" / ".tmp-export-crashed").mkdir()  # what a killed export leaves behind
    second = export_saved_model(model, labels, tmp_path, "m")
    assert (first.name, second.name) == ("1", "2")
    assert existing_versions(tmp_path / "m") == [1, 2]
    assert latest_version(tmp_path / "m") == second
    assert export_saved_model(model, labels, tmp_path, "m", version=7).name == "7"
    with pytest.raises(ValueError, match="already exists"):
        export_saved_model(model, labels, tmp_path, "m", version=7)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        ".tmp-export-crashed", "1", "2", "7"]


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "..", ".hidden", "", "-x"])
def test_model_names_cannot_escape_the_export_root(name):
    with pytest.raises(ValueError, match="`export.name` must be"):
        check_model_name(name)


def test_a_model_symlink_leading_out_of_the_root_is_refused(tiny_run, tmp_path):
    outside, root = tmp_path / "outside", tmp_path / "root"
    outside.mkdir()
    root.mkdir()
    (root / "m").symlink_to(outside)
    labels = json.loads((tiny_run.run_dir / "labels.json").read_text())
    with pytest.raises(ValueError, match="symlink .* outside the export root"):
        export_saved_model(tiny_run.model, labels, root, "m")
    assert list(outside.iterdir()) == []
    (root / "inside").mkdir()
    (root / "n").symlink_to(root / "inside")  # a link that stays in the root is fine
    assert model_directory(root, "n") == root / "n"


def test_cli_predict_prints_labels_for_any_text(tiny_run):
    result = run_cli("predict", str(tiny_run.export_path.parent), "great :)", "我爱你", "😀", "")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [row["text"] for row in rows] == ["great :)", "我爱你", "😀", ""]
    for row in rows:
        assert row["label"] in ("negative", "neutral", "positive")
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_cli_export_adds_a_version(tiny_run, tmp_path):
    result = run_cli("export", str(tiny_run.run_dir), "--export-dir", str(tmp_path),
                     "--name", "again")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith(os.path.join("again", "1"))
    assert (tmp_path / "again" / "1" / "saved_model.pb").is_file()
