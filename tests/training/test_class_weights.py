"""`train.class_weight`: the weights Keras's `class_weight` would use, carried by the training
batches of every input path (never the validation ones), and refused where they cannot apply."""

import numpy as np
import pytest

from tfnlp.backend import tf
from tfnlp.config import ConfigError, FieldError, from_dict
from tfnlp.tasks import get_task
from tfnlp.training.class_weights import class_weights
from tfnlp.training.strategy import TaskRole

LABELS = ["negative", "neutral", "positive"]
# 20 / 12 / 8 rows, each text unique and with its own annotator weight.
ROWS = [(f"text {i}", LABELS[0 if i < 20 else 1 if i < 32 else 2], 0.5 + (i % 5) / 10)
        for i in range(40)]
WEIGHT_OF = {text: weight for text, _, weight in ROWS}


def write_csv(path):
    path.write_text("text,label,confidence\n" + "".join(
        f"{text},{label},{weight}\n" for text, label, weight in ROWS))
    return path


def task_for(source, **train):
    config = from_dict({
        "name": "weighted", "data": {"source": str(source), "weight_column": "confidence"},
        "preprocessing": {"sequence_length": 8},
        "train": {"batch_size": 4, "label_smoothing": 0.0, **train},
    })
    return get_task(config)


def epoch(dataset):
    """(label ids, weights, texts or None) of one pass over `dataset`."""
    ids, weights, texts = [], [], []
    for x, y, w in dataset:
        ids += np.argmax(y.numpy(), axis=-1).tolist()
        weights += w.numpy().tolist()
        texts += [t.decode() for t in x.numpy()] if x.dtype == tf.string else []
    return ids, weights, texts


def test_balanced_weights_are_n_over_classes_times_the_class_count():
    from sklearn.utils.class_weight import compute_class_weight

    weights = class_weights("balanced", LABELS, [6, 3, 1])
    np.testing.assert_allclose(weights, [10 / 18, 10 / 9, 10 / 3], rtol=1e-6)
    y = [0] * 6 + [1] * 3 + [2]
    np.testing.assert_allclose(weights, compute_class_weight("balanced", classes=np.arange(3),
                                                             y=y), rtol=1e-6)


def test_named_weights_leave_the_other_labels_at_one():
    assert class_weights({"positive": 2.5}, LABELS, [6, 3, 1]).tolist() == [1.0, 1.0, 2.5]
    assert class_weights(None, LABELS, [6, 3, 1]) is None


def test_a_label_the_data_does_not_have_is_refused_naming_it_and_the_labels():
    with pytest.raises(FieldError, match=r"`train.class_weight` .*'negative', 'neutral', "
                                         r"'positive'.*'positve' is not one of them"):
        class_weights({"positve": 2.0}, LABELS, [6, 3, 1])


@pytest.mark.parametrize("value, expected", [
    ("inverse", "one of 'balanced'"),
    ({"positive": -1.0}, "weights >= 0"),
    ({"positive": "high"}, "a mapping of a string to a number"),
])
def test_the_schema_refuses_values_that_are_no_class_weights(value, expected):
    with pytest.raises(ConfigError, match=f"`train.class_weight` must be .*{expected}"):
        from_dict({"name": "demo", "train": {"class_weight": value}})


def test_a_language_model_refuses_class_weights():
    with pytest.raises(ConfigError, match="`train.class_weight` must be null for `task: "
                                          "language_model`"):
        from_dict({"name": "demo", "task": "language_model", "model": {"name": "lstm"},
                   "train": {"class_weight": "balanced"}})


def test_the_weighted_loss_is_the_hand_computed_class_weighted_cross_entropy(tmp_path):
    task = task_for(write_csv(tmp_path / "d.csv"), class_weight="balanced")
    data = task.read_data()
    inputs = task.training_inputs(data, task.preprocessor_from(["[PAD]", "[UNK]", "text"]),
                                  tf.distribute.get_strategy(), TaskRole("default", True, "local"))
    texts, y, w = next(iter(inputs.fit_kwargs["x"]))  # a batch of 4
    logits = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)

    # By hand: balanced weights from the training split's counts, times each row's own weight.
    counts = np.array([data.splits.train.labels.count(label) for label in LABELS])
    balanced = len(data.splits.train) / (3 * counts)
    label_ids = np.argmax(y.numpy(), axis=-1)
    row_weights = [balanced[i] * WEIGHT_OF[t.decode()] for i, t in zip(label_ids, texts.numpy())]
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    by_hand = np.mean([-row_weights[r] * log_softmax[r, label_ids[r]] for r in range(4)])

    np.testing.assert_allclose(w.numpy(), row_weights, rtol=1e-6)
    assert float(task.loss()(y, logits, sample_weight=w)) == pytest.approx(by_hand, rel=1e-5)
    assert inputs.report["class_weight"] == pytest.approx(dict(zip(LABELS, balanced)))


PATHS = {
    "in memory": ({}, "default"),
    "length bucketing": ({"train": {"length_bucketing": True}}, "default"),
    "tokenized in the dataset": ({"preprocessing": {"in_dataset": True}}, "default"),
    "parameter server": ({}, "parameter_server"),
    "streamed": ({"data": {"stream": True}}, "default"),
}


@pytest.mark.parametrize("path", PATHS)
def test_every_input_path_weights_the_training_batches_and_not_validation(tmp_path, path):
    overrides, kind = PATHS[path]
    source = write_csv(tmp_path / ("d-0.csv" if path == "streamed" else "d.csv"))
    config = from_dict({
        "name": "weighted", "seed": 1,
        "data": {"source": str(source), "weight_column": "confidence",
                 **overrides.get("data", {})},
        "preprocessing": {"sequence_length": 8, **overrides.get("preprocessing", {})},
        "train": {"batch_size": 4, "class_weight": {"positive": 3.0, "neutral": 0.5},
                  **overrides.get("train", {})},
    })
    task = get_task(config)
    data = task.read_data()
    inputs = task.training_inputs(data, task.preprocessor_from(["[PAD]", "[UNK]", "text"]),
                                  tf.distribute.get_strategy(), TaskRole(kind, True, "local"))
    train, validation = inputs.fit_kwargs["x"], inputs.fit_kwargs["validation_data"]
    if kind == "parameter_server":  # DatasetCreators of endless, repeated streams
        steps = inputs.fit_kwargs["steps_per_epoch"], inputs.fit_kwargs["validation_steps"]
        train, validation = (creator(tf.distribute.InputContext()).take(count)
                             for creator, count in zip((train, validation), steps))
    ids, weights, _ = epoch(train)
    # Each training row weighs its class weight times its own; the epoch holds every row once.
    per_class, trained = {0: 1.0, 1: 0.5, 2: 3.0}, split_texts(data, "train")
    expected = sorted((LABELS.index(label), per_class[LABELS.index(label)] * WEIGHT_OF[text])
                      for text, label, _ in ROWS if text in trained)
    np.testing.assert_allclose(sorted(zip(ids, weights)), expected, rtol=1e-6)
    _, weights, _ = epoch(validation)  # the rows' own weights only
    held_out = split_texts(data, "validation")
    assert sorted(weights) == pytest.approx(sorted(WEIGHT_OF[text] for text in held_out))
    assert inputs.report["class_weight"] == {"negative": 1.0, "neutral": 0.5, "positive": 3.0}


def split_texts(data, split: str) -> set[str]:
    from tfnlp.data.streaming import split_dataset

    if not data.stream:
        return set(getattr(data.splits, split).texts)
    rows = split_dataset(data.stream, split, batch_size=64, shuffle=False, seed=1,
                         shuffle_buffer=1)
    return {text.decode() for texts, *_ in rows for text in texts.numpy()}


def test_the_weights_are_logged_in_one_line(tmp_path, caplog):
    task = task_for(write_csv(tmp_path / "d.csv"), class_weight="balanced")
    with caplog.at_level("INFO", logger="tfnlp"):
        task.class_weights(task.read_data())
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("class")]
    assert line.startswith("class weights: negative 0.6")
    assert line.endswith("(train.class_weight: balanced)")


def test_compression_fine_tuning_weighs_the_examples_as_training_did(tmp_path):
    from tfnlp.compression.data import training_weights
    from tfnlp.data import encode_labels

    task = task_for(write_csv(tmp_path / "d.csv"), class_weight={"positive": 4.0})
    splits = task.read_data().splits
    ids = encode_labels(splits.train, LABELS)
    weights = training_weights(task.config, splits, LABELS, ids)
    expected = [(4.0 if label == "positive" else 1.0) * WEIGHT_OF[text]
                for text, label in zip(splits.train.texts, splits.train.labels)]
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
