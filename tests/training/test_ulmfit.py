"""ULMFiT-style fine-tuning: gradual unfreezing keeps frozen groups bit-identical, layer
learning-rate decay scales each group's update, and `pretrain:` trains a language model on the
classifier's training texts only, is reused when nothing changed, and warm-starts the
classifier (`pipelines/tweets_ulmfit.yaml`)."""

import json
import logging

import numpy as np
import pytest

from tests.conftest import REPO
from tfnlp.backend import keras, tf
from tfnlp.config import load_pipeline
from tfnlp.config.loading import ConfigError
from tfnlp.tasks import get_task
from tfnlp.training.pretraining import PRETRAIN_DIR, STAGE_FILE, TEXTS_FILE
from tfnlp.training.run import train_pipeline
from tfnlp.training.run_directory import RunDirectory
from tfnlp.training.unfreezing import (
    GradualUnfreezing,
    layer_groups,
    layer_rate_factors,
    with_layer_rates,
)

ULMFIT = REPO / "pipelines" / "tweets_ulmfit.yaml"
# A run in seconds: 150 tweets, a 200-token vocabulary, a 2 x 8-unit LSTM.
TINY_ULMFIT = [
    "data.limit=150", "preprocessing.vocab_size=200", "preprocessing.sequence_length=16",
    "model.embedding_dim=16", "model.units=8", "pretrain.epochs=1",
    "pretrain.sequence_length=16", "pretrain.stride=16", "pretrain.batch_size=16",
    "train.epochs=2", "train.batch_size=32",
]


def tiny_sequence_model(seed=0):
    """ids -> embedding -> lstm_0 -> logits: three layer groups."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input(shape=(6,), dtype="int32")
    x = keras.layers.Embedding(20, 4, name="embedding")(ids)
    x = keras.layers.LSTM(3, name="lstm_0")(x)
    return keras.Model(ids, keras.layers.Dense(2, name="logits")(x))


GROUPS = ["logits", "lstm_0", "embedding"]  # tiny_sequence_model's, top first


def layer_values(model):
    return {name: [w.numpy().copy() for w in model.get_layer(name).weights] for name in GROUPS}


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


class WeightsEachEpoch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.values = [layer_values(self.model)]

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(layer_values(self.model))


def test_gradual_unfreezing_keeps_frozen_groups_bit_identical_until_their_epoch(caplog):
    model = tiny_sequence_model()
    assert layer_groups(model) == GROUPS
    model.compile(optimizer=keras.optimizers.AdamW(0.05), loss=keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.integers(1, 20, (32, 6)), rng.integers(0, 2, 32)
    record = WeightsEachEpoch()
    with caplog.at_level(logging.INFO, logger="tfnlp"):
        model.fit(x, y, batch_size=8, epochs=4, verbose=0,
                  callbacks=[GradualUnfreezing(), record])
    start, *ends = record.values
    # epoch e (from 1) trains the top e groups: logits, then lstm_0, then embedding.
    trained_by = {"logits": 1, "lstm_0": 2, "embedding": 3}
    for name, epoch in trained_by.items():
        for index, values in enumerate(ends, 1):
            before = start[name] if index == 1 else ends[index - 2][name]
            assert same(values[name], before) == (index < epoch), (name, index)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unfreeze")]
    assert lines == [
        "unfreeze: epoch 1 trains logits; frozen: lstm_0, embedding",
        "unfreeze: epoch 2 trains logits, lstm_0; frozen: embedding",
        "unfreeze: epoch 3 trains logits, lstm_0, embedding; frozen: nothing"]
    assert all(layer.trainable for layer in model.layers)  # the compiled state, after fit


def test_a_layer_frozen_before_training_stays_frozen():
    model = tiny_sequence_model()
    model.get_layer("embedding").trainable = False
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    before = layer_values(model)["embedding"]
    unfreezing = GradualUnfreezing(groups=GROUPS)
    model.fit(np.ones((8, 6), "int32"), np.zeros(8), epochs=3, verbose=0,
              callbacks=[unfreezing])
    assert unfreezing.training == ["logits", "lstm_0"]
    assert same(layer_values(model)["embedding"], before)


def test_layer_lr_decay_scales_the_first_adamw_update_by_decay_to_the_depth():
    lr, decay, weight_decay = 0.01, 0.5, 0.1
    beta_2, epsilon = 0.999, 1e-7
    x, y = np.linspace(-1, 1, 12, dtype="float32").reshape(4, 3), np.array([0, 1, 1, 0])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def one_step(optimizer):
        inputs = keras.Input(shape=(3,))
        hidden = keras.layers.Dense(4, activation="tanh", name="hidden")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(hidden))
        model.set_weights([np.full_like(w, 0.1 * (i + 1)) + np.arange(w.size).reshape(w.shape)
                           * 0.01 for i, w in enumerate(model.get_weights())])
        if hasattr(optimizer, "set_model"):
            optimizer.set_model(model)
        with tf.GradientTape() as tape:
            value = loss(y, model(x))
        gradients = tape.gradient(value, model.trainable_variables)
        before = [v.numpy().copy() for v in model.trainable_variables]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return model, before, [g.numpy() for g in gradients]

    factors = layer_rate_factors(one_step(keras.optimizers.SGD())[0], decay)
    assert factors == {"logits": 1.0, "hidden": 0.5}
    scaled = with_layer_rates(keras.optimizers.AdamW)(
        learning_rate=lr, weight_decay=weight_decay, factors=factors)
    model, before, gradients = one_step(scaled)
    plain, _, _ = one_step(keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay))
    for variable, reference, w0, g in zip(model.trainable_variables, plain.trainable_variables,
                                          before, gradients, strict=True):
        factor = factors[variable.name.split("/")[0]]
        # Adam's first step, by hand: m = (1-b1) g, v = (1-b2) g^2, alpha = lr sqrt(1-b2)/(1-b1),
        # so w -= lr sqrt(1-b2) g / (sqrt(1-b2) |g| + eps); AdamW first decays w by lr * wd * w.
        step = lr * weight_decay * w0 + lr * np.sqrt(1 - beta_2) * g / (
            np.sqrt(1 - beta_2) * np.abs(g) + epsilon)
        np.testing.assert_allclose(variable.numpy(), w0 - factor * step, rtol=1e-5, atol=1e-7)
        update, plain_update = variable.numpy() - w0, reference.numpy() - w0
        if factor == 1.0:
            assert np.array_equal(update, plain_update)  # the top group is AdamW's own step
        else:
            np.testing.assert_allclose(update, decay * plain_update, rtol=1e-5, atol=1e-8)


@pytest.fixture(scope="module")
def ulmfit_run(tmp_path_factory):
    """The tiny tweets_ulmfit pipeline (pretraining included) trained once for this module."""
    root = tmp_path_factory.mktemp("ulmfit")
    config = load_pipeline(ULMFIT, TINY_ULMFIT)
    return config, train_pipeline(config, root / "run", export=False)


def test_the_pipeline_pretrains_then_fine_tunes_from_the_language_model(ulmfit_run):
    config, result = ulmfit_run
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    report = metrics["init_from"]
    assert report["source"] == str(result.run_dir / PRETRAIN_DIR)
    assert report["loaded"] == {"embedding": "embedding", "lstm_0": "lstm_0",
                                "lstm_1": "lstm_1"}
    assert report["vocabulary"]["equal"] is True
    assert (result.run_dir / "vocab.txt").read_text() == (
        result.run_dir / PRETRAIN_DIR / "vocab.txt").read_text()
    lm_metrics = json.loads((result.run_dir / PRETRAIN_DIR / "metrics.json").read_text())
    assert lm_metrics["test"]["bits_per_character"] > 0
    assert "pretrain" in json.dumps(metrics["timings"])


def test_the_language_model_reads_exactly_the_classifiers_training_texts(ulmfit_run):
    config, result = ulmfit_run
    splits = get_task(config).read_data().splits
    lm_dir = result.run_dir / PRETRAIN_DIR
    written = [json.loads(line)["text"]
               for line in (lm_dir / TEXTS_FILE).read_text().splitlines()]
    assert written == list(splits.train.texts)
    # The language model's own train/validation/test splits are all cut from those texts.
    lm_splits = get_task(RunDirectory(lm_dir).read_config()).read_data().splits
    lm_texts = sorted(text for texts in lm_splits.values() for text in texts)
    assert lm_texts == sorted(text.strip() for text in splits.train.texts)
    assert len(lm_splits["validation"]) and len(lm_splits["test"])


def test_a_repeated_run_reuses_the_finished_language_model(ulmfit_run, caplog):
    config, result = ulmfit_run
    lm_dir = result.run_dir / PRETRAIN_DIR
    stamps = {path: path.stat().st_mtime_ns for path in lm_dir.rglob("*") if path.is_file()}
    with caplog.at_level(logging.INFO, logger="tfnlp"):
        train_pipeline(config, result.run_dir, export=False)
    assert f"pretrain: reusing the language model in {lm_dir}" in caplog.text
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert json.loads((lm_dir / STAGE_FILE).read_text())["finished"] is True


@pytest.mark.parametrize("pipeline, overrides, key, expectation", [
    ("tweets_ulmfit.yaml", ["model.init_from=runs/x"], "model.init_from",
     "null with `pretrain` (the pretraining run in <run>/pretrain supplies it"),
    ("tweets_ulmfit.yaml", ["preprocessing.vocabulary_from=runs/x"],
     "preprocessing.vocabulary_from", "null with `pretrain`"),
    ("tweets_ulmfit.yaml", ["model.name=bilstm"], "model.name", "'lstm' with `pretrain`"),
    ("tweets_ulmfit.yaml", ["preprocessing.tokenizer=word"], "preprocessing.tokenizer",
     "'wordpiece' with `pretrain`"),
    ("tweets_ulmfit.yaml", ["pretrain.validation_fraction=0.6", "pretrain.test_fraction=0.5"],
     "pretrain.test_fraction", "below 1 - `pretrain.validation_fraction` = 0.4"),
    ("tweets_ulmfit.yaml", ["pretrain.epochs=0"], "pretrain.epochs", ">= 1"),
    ("tweets_ulmfit.yaml", ["train.unfreeze=none", "train.layer_lr_decay=1.0",
                            "distribute.strategy=parameter_server"], "distribute.strategy",
     "one of auto, default, one_device, mirrored"),
    ("tweets_ulmfit.yaml", ["train.layer_lr_decay=0"], "train.layer_lr_decay",
     "above 0 and at most 1"),
    ("tweets_ulmfit.yaml", ["train.layer_lr_decay=1.5"], "train.layer_lr_decay",
     "above 0 and at most 1"),
    ("tweets_ulmfit.yaml", ["train.unfreeze=all"], "train.unfreeze", "one of 'none', 'gradual'"),
    ("tweets_lstm.yaml", ["train.unfreeze=gradual", "distribute.strategy=dtensor",
                          "distribute.mesh={batch: 1, model: 2}"], "train.unfreeze",
     "'none' under `distribute.strategy: dtensor`"),
    ("tweets_lm.yaml", ["train.layer_lr_decay=0.5"], "train.layer_lr_decay",
     "1.0 for `task: language_model`"),
    ("tweets_lm.yaml", ["pretrain={}"], "pretrain", "null for `task: language_model`"),
])
def test_invalid_ulmfit_settings_name_their_key(pipeline, overrides, key, expectation):
    with pytest.raises(ConfigError) as error:
        load_pipeline(REPO / "pipelines" / pipeline, overrides)
    message = str(error.value)
    assert message.startswith(f"{REPO / 'pipelines' / pipeline}: `{key}` must be {expectation}")
    assert f"Received: {key}=" in message


def test_the_ulmfit_pipeline_sets_up_the_language_model_like_the_classifier():
    config = load_pipeline(ULMFIT)
    assert (config.train.unfreeze, config.train.layer_lr_decay) == ("gradual", 0.5)
    assert config.model.init_from is None and config.preprocessing.vocabulary_from is None
    # Unset init_layers with pretrain is allowed: every matching layer loads.
    assert load_pipeline(ULMFIT, ["model.init_layers=null"]).model.init_layers is None
