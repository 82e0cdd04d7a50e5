"""`tfnlp ensemble`: finished runs averaged into one string-in export that serves exactly the
weighted average of the members' own exports, with metrics beside each member's."""

import json

import numpy as np
import pytest

from tests.conftest import REPO, TINY_OVERRIDES, run_cli, run_python
from tfnlp.backend import tf
from tfnlp.config import ModelConfig, from_dict, load_pipeline
from tfnlp.ensemble import check_members, ensemble_runs
from tfnlp.export.ensemble import EnsembleServingModule, normalized_weights
from tfnlp.training.run_directory import RunDirectory

LABELS = ["negative", "neutral", "positive"]

TEXTS = ["I love this car :)", "worst traffic ever", "我爱北京天安门", "😀😀😀", "",
         "meh, it was ok I guess"]

# A fresh interpreter without tfnlp: every export's serving_default on the same texts.
SERVE_ALL = """
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the text ops)
texts = tf.constant(json.loads(sys.argv[1]))
out = {path: tf.saved_model.load(path).signatures["serving_default"](text=texts)[
    "probabilities"].numpy().tolist() for path in sys.argv[2:]}
print(json.dumps({"probabilities": out, "tfnlp_imported": "tfnlp" in sys.modules}))
"""


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """A second tiny member: another model, and class weights (balanced) in its training."""
    from tfnlp.training.run import train_pipeline

    root = tmp_path_factory.mktemp("lstm_run")
    config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", TINY_OVERRIDES + [
        "model.num_layers=1", "train.class_weight=balanced",
        f"export.dir={root / 'saved_models'}"])
    return train_pipeline(config, root / "run")


@pytest.fixture(scope="module")
def ensemble(tiny_run, lstm_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    return ensemble_runs([tiny_run.run_dir, lstm_run.run_dir], "tiny_ensemble",
                         export_dir=root / "saved_models",
                         out_dir=root / "runs" / "ensembles" / "tiny_ensemble")


def tiny_classifier(name: str, vocabulary: list[str]):
    """An untrained string-in classifier with its own vocabulary."""
    from tfnlp.models import build_model
    from tfnlp.preprocessing import TextPreprocessor

    config = ModelConfig(name=name, embedding_dim=8, units=4, num_layers=1)
    return build_model(config, TextPreprocessor(vocabulary, sequence_length=8), len(LABELS))


def test_the_serving_module_averages_members_that_tokenize_differently():
    members = [tiny_classifier("lstm", ["[PAD]", "[UNK]", "love", "car", "traffic"]),
               tiny_classifier("bilstm", ["[PAD]", "[UNK]", "worst", "ever", "ok", "i"])]
    module = EnsembleServingModule(members, LABELS, [3, 1])  # `serve` holds it weakly
    served = module.serve(tf.constant(TEXTS))
    each = [tf.nn.softmax(member(tf.constant(TEXTS))).numpy() for member in members]
    np.testing.assert_allclose(served["probabilities"].numpy(), 0.75 * each[0] + 0.25 * each[1],
                               atol=1e-6)
    assert served["label_id"].numpy().tolist() == (0.75 * each[0] + 0.25 * each[1]).argmax(
        axis=1).tolist()
    assert {label.decode() for label in served["label"].numpy()} <= set(LABELS)


@pytest.mark.parametrize("weights, members, problem", [
    ([1.0], 1, "at least two members"),
    ([1.0, 2.0, 3.0], 2, "2 finite numbers >= 0"),
    ([1.0, -1.0], 2, "2 finite numbers >= 0"),
    ([0.0, 0.0], 2, "not all 0"),
    ([float("nan"), 1.0], 2, "finite"),
])
def test_weights_that_do_not_fit_the_members_are_refused(weights, members, problem):
    with pytest.raises(ValueError, match=problem):
        normalized_weights(weights, members)


@pytest.mark.slow
def test_the_ensemble_export_serves_the_average_of_the_members_exports(ensemble, tiny_run,
                                                                       lstm_run):
    paths = [str(p) for p in (ensemble.export_path, tiny_run.export_path, lstm_run.export_path)]
    result = run_python(SERVE_ALL, json.dumps(TEXTS), *paths)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["tfnlp_imported"] is False
    averaged, first, second = (np.array(served["probabilities"][p]) for p in paths)
    assert averaged.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(averaged, (first + second) / 2, atol=1e-5)


@pytest.mark.slow
def test_the_metrics_hold_the_ensemble_beside_each_member(ensemble, tiny_run, lstm_run):
    metrics = json.loads((ensemble.out_dir / "metrics.json").read_text())
    assert metrics == ensemble.metrics and metrics["weights"] == [0.5, 0.5]
    test = metrics["test"]
    assert test["examples"] == 60 and 0.0 <= test["accuracy"] <= 1.0
    assert set(test["per_class"]) == {"negative", "neutral", "positive"}
    assert set(test["per_class"]["neutral"]) == {"precision", "recall", "f1", "support"}
    # The very test split each member was evaluated on when it trained: the same accuracy.
    members = metrics["members"]
    assert [m["pipeline"] for m in members] == ["tweets_bilstm", "tweets_lstm"]
    assert [m["test"]["accuracy"] for m in members] == [
        run.metrics["test"]["accuracy"] for run in (tiny_run, lstm_run)]
    assert metrics["export"]["path"] == str(ensemble.export_path)
    assert (ensemble.out_dir / "confusion_matrix.png").is_file()


@pytest.mark.slow
def test_a_run_trained_with_class_weights_records_them(lstm_run):
    from tfnlp.tasks import get_task

    weights = lstm_run.metrics["train"]["class_weight"]
    train = get_task(RunDirectory(lstm_run.run_dir).read_config()).read_data().splits.train
    counts = {label: train.labels.count(label) for label in weights}
    # Balanced: weight × count is the same for every class (n_train / n_classes).
    assert [weights[label] * counts[label] for label in weights] == pytest.approx(
        [len(train) / 3] * 3)


def fake_run(directory, labels=tuple(LABELS), **data):
    """A run directory with only what `check_members` reads: config.yaml and labels.json."""
    run = RunDirectory(directory).create()
    run.write_config(from_dict({"name": directory.name, "data": {"limit": 600, **data}}))
    run.write_json("labels.json", list(labels))
    return directory


def test_a_member_with_other_labels_is_refused_naming_the_run(tmp_path):
    first, other = fake_run(tmp_path / "a"), fake_run(tmp_path / "b", labels=("neg", "pos"))
    with pytest.raises(ValueError, match=r"b: its labels \['neg', 'pos'\] \(labels.json\) "
                                         r"differ from .*a's"):
        check_members([first, other])


def test_a_member_with_another_split_is_refused_naming_the_key(tmp_path):
    first, other = fake_run(tmp_path / "a"), fake_run(tmp_path / "b", test_fraction=0.2)
    with pytest.raises(ValueError, match=r"b: `data.test_fraction` is 0.2, but .*a's is 0.1"):
        check_members([first, other])


@pytest.mark.slow
def test_the_cli_ensemble_passes_serve_check(tiny_run, lstm_run, tmp_path):
    result = run_cli("ensemble", str(tiny_run.run_dir), str(lstm_run.run_dir), "--out", "duo",
                     "--weights", "validation", "--export-dir", str(tmp_path / "saved_models"),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ensemble test accuracy" in result.stdout
    metrics = json.loads((tmp_path / "runs" / "ensembles" / "duo" / "metrics.json").read_text())
    accuracies = [m["validation"]["accuracy"] for m in metrics["members"]]
    assert metrics["weights"] == pytest.approx([a / sum(accuracies) for a in accuracies])
    check = run_cli("serve-check", str(tmp_path / "saved_models" / "duo"))
    assert check.returncode == 0, check.stdout + check.stderr[-2000:]
