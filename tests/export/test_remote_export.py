"""Exports to remote storage, tried on TensorFlow's in-memory `ram://` filesystem: the version
is uploaded with saved_model.pb last, models.config names the URL, and `tfnlp predict` reads
the export back from there."""

import json

import numpy as np

from tfnlp import cli
from tfnlp.backend import tf
from tfnlp.export.model_config import parse_models_config
from tfnlp.training.trained import export_run

TEXTS = ["what a lovely day", "this is awful"]


def test_export_to_ram_and_predict_from_there(tiny_run, monkeypatch, capsys, tmp_path):
    copied = []
    copy = tf.io.gfile.copy
    monkeypatch.setattr(tf.io.gfile, "copy", lambda src, dst, overwrite=False: (
        copied.append(dst), copy(src, dst, overwrite))[1])
    root = "ram://exports-test"
    first = export_run(tiny_run.run_dir, root)
    second = export_run(tiny_run.run_dir, root)
    name = tiny_run.export_path.parent.name
    assert (first, second) == (f"{root}/{name}/1", f"{root}/{name}/2")
    assert copied[-1] == f"{second}/saved_model.pb" and len(copied) > 3
    assert [p for p in copied if p.endswith("saved_model.pb")] == [
        f"{first}/saved_model.pb", f"{second}/saved_model.pb"]
    assert tf.io.gfile.exists(f"{second}/assets.extra/tf_serving_warmup_requests")
    config = tf.io.gfile.GFile(f"{root}/models.config").read()
    local_config = tmp_path / "models.config"
    local_config.write_text(config)
    assert parse_models_config(local_config) == {name: f"{root}/{name}"}
    assert not [n for n in tf.io.gfile.listdir(f"{root}/{name}") if "tmp" in n]

    capsys.readouterr()
    assert cli.main(["predict", f"{root}/{name}", *TEXTS]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = tf.nn.softmax(tiny_run.model(tf.constant(TEXTS))).numpy()
    got = np.array([list(row["probabilities"].values()) for row in rows])
    np.testing.assert_allclose(got, expected, atol=1e-5)
