"""A DTensor-trained run exports like any other: its sharded checkpoint loads into an ordinary
model, and the SavedModel answers as that model does, in a fresh process."""

import json

import pytest

from tests.conftest import REPO, TINY_OVERRIDES, run_cli, run_python

TRANSFORMER = REPO / "pipelines" / "tweets_transformer.yaml"
MODEL_PARALLEL = ["distribute.strategy=dtensor", "distribute.mesh={batch: 1, model: 2}",
                  "model.num_heads=2", "model.ff_dim=16", "train.epochs=1"]

COMPARE = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the export's ops)
from tfnlp.training.trained import load_trained

texts = ["I love this car :)", "worst traffic ever, stuck for 2 hours", "", "ok 🙂"]
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
exported = served(text=tf.constant(texts))["probabilities"].numpy()
ordinary = tf.nn.softmax(load_trained(sys.argv[2]).model(tf.constant(texts))).numpy()
print(json.dumps({"gap": float(np.abs(exported - ordinary).max()),
                  "rows": exported.shape[0], "finite": bool(np.isfinite(exported).all())}))
"""


@pytest.fixture(scope="module")
def dtensor_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dtensor_run")
    done = run_cli("train", str(TRANSFORMER), "--set", *TINY_OVERRIDES, *MODEL_PARALLEL,
                   f"export.dir={root / 'saved_models'}", "--run-dir", str(root / "run"),
                   timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_the_run_trained_sharded_and_says_so(dtensor_run):
    metrics = json.loads((dtensor_run / "run" / "metrics.json").read_text())
    parallelism = metrics["train"]["parallelism"]
    assert metrics["train"]["strategy"] == "dtensor"
    assert parallelism["kind"] == "model" and parallelism["devices"] == 2
    assert parallelism["parameter_bytes_by_device"][0] == parallelism["parameter_bytes_per_device"]
    assert "encoder_0/ff_hidden/kernel" in parallelism["sharded_variables"]
    assert (dtensor_run / "run" / "checkpoints" / "best.index").is_file()


def test_the_export_equals_an_ordinary_model_from_the_same_weights_in_a_fresh_process(
        dtensor_run):
    export = dtensor_run / "saved_models" / "tweets_transformer" / "1"
    done = run_python(COMPARE, str(export), str(dtensor_run / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == 4 and result["finite"]  # the empty text too
    assert result["gap"] < 1e-5


def test_serve_check_passes_on_the_export_of_a_dtensor_run(dtensor_run):
    export = dtensor_run / "saved_models" / "tweets_transformer" / "1"
    done = run_cli("serve-check", str(export), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "11/11 checks passed" in done.stdout
