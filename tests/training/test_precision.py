"""Mixed precision: dtypes per policy, loss scaling, training, cross-policy checkpoints, export."""

import numpy as np
import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.backend import keras, tf
from tfnlp.config import load_pipeline
from tfnlp.data import load_examples
from tfnlp.export import export_saved_model
from tfnlp.export.classification import text_preprocessor
from tfnlp.models import build_model
from tfnlp.preprocessing import TextPreprocessor
from tfnlp.serving import load_exported
from tfnlp.tasks.classification import ClassificationTask
from tfnlp.training.precision import precision_scope, with_loss_scaling
from tfnlp.training.run import compile_for_training

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
MODELS = ("lstm", "bilstm", "transformer")
COMPUTE = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def tweets():
    config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", TINY_OVERRIDES)
    examples, labels, _ = load_examples(config.data, seed=0)
    texts = list(examples.texts[:96])
    ids = np.array([labels.index(label) for label in examples.labels[:96]])
    preprocessor = TextPreprocessor.from_texts(texts, vocab_size=300, sequence_length=32)
    return texts, ids, preprocessor


def tiny_config(model_name, *overrides):
    return load_pipeline(
        REPO / "pipelines" / "tweets_lstm.yaml",
        TINY_OVERRIDES + [f"model.name={model_name}", "model.num_layers=1",
                          "model.num_heads=2", "model.ff_dim=16", *overrides],
    )


def build(model_name, policy, preprocessor, *overrides):
    config = tiny_config(model_name, *overrides)
    with precision_scope(policy):
        model = build_model(config.model, preprocessor, 3)
        compile_for_training(model, ClassificationTask(config), config)
    return model, config


# Every model and every policy in the default run; the whole grid with `-m slow`.
_DEFAULT_RUN = {("lstm", "mixed_float16"), ("bilstm", "mixed_bfloat16"), ("transformer", "float32")}
GRID = [
    pytest.param(model_name, policy, marks=()
                 if (model_name, policy) in _DEFAULT_RUN else pytest.mark.slow)
    for model_name in MODELS for policy in POLICIES
]


@pytest.mark.parametrize("model_name, policy", GRID)
def test_policy_dtypes_and_loss_decreasing(tweets, model_name, policy):
    texts, ids, preprocessor = tweets
    keras.utils.set_random_seed(0)
    model, _ = build(model_name, policy, preprocessor, "train.learning_rate=0.01",
                     "train.label_smoothing=0.0", "model.dropout=0.0")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the block
    assert model.get_layer("embedding").compute_dtype == COMPUTE[policy]
    assert model.get_layer("logits").compute_dtype == "float32"
    assert {v.dtype for v in model.trainable_variables} == {tf.float32}
    is_scaled = isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert is_scaled == (policy == "mixed_float16")
    logits = model(tf.constant(["good day", "bad day"]))
    assert logits.dtype == tf.float32 and logits.shape == (2, 3)

    history = model.fit(tf.constant(texts[:64]), keras.utils.to_categorical(ids[:64], 3),
                        batch_size=32, epochs=4, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 0.02, losses


def test_with_loss_scaling_wraps_only_float16():
    optimizer = keras.optimizers.Adam()
    scaled = with_loss_scaling(optimizer, "mixed_float16")
    assert isinstance(scaled, keras.mixed_precision.LossScaleOptimizer) and scaled.dynamic
    assert with_loss_scaling(scaled, "mixed_float16") is scaled
    assert with_loss_scaling(optimizer, "mixed_bfloat16") is optimizer
    assert with_loss_scaling(optimizer, "float32") is optimizer


@pytest.mark.parametrize("saved_under, restored_under",
                         [("mixed_bfloat16", "float32"), ("mixed_float16", "float32")])
def test_checkpoint_restores_under_another_policy(tweets, tmp_path, saved_under, restored_under):
    _, _, preprocessor = tweets
    keras.utils.set_random_seed(1)
    saved, _ = build("bilstm", saved_under, preprocessor)
    saved.save_weights(str(tmp_path / "ckpt"))
    keras.utils.set_random_seed(2)  # different initial weights: the restore must overwrite them
    restored, _ = build("bilstm", restored_under, preprocessor)
    restored.load_weights(str(tmp_path / "ckpt")).expect_partial()
    for a, b in zip(saved.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    texts = tf.constant(["what a great day", "this is awful", "meh"])
    np.testing.assert_allclose(
        tf.nn.softmax(saved(texts)).numpy(), tf.nn.softmax(restored(texts)).numpy(), atol=0.03)


def test_tiny_run_checkpoint_loads_into_a_bf16_model(tiny_run):
    float32_model = tiny_run.model
    with precision_scope("mixed_bfloat16"):
        config = tiny_config("bilstm")
        bf16 = build_model(config.model, text_preprocessor(float32_model), 3)
    bf16.load_weights(str(tiny_run.run_dir / "checkpoints" / "best")).expect_partial()
    texts = tf.constant(["what a great day", "awful, just awful", "ok I guess"])
    np.testing.assert_allclose(tf.nn.softmax(float32_model(texts)).numpy(),
                               tf.nn.softmax(bf16(texts)).numpy(), atol=0.03)


@pytest.mark.parametrize(
    "policy", ["mixed_bfloat16", pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_export_returns_float32_probabilities(tweets, tmp_path, policy):
    _, _, preprocessor = tweets
    model, _ = build("lstm", policy, preprocessor)
    path = export_saved_model(model, LABELS, tmp_path, "m", vocabulary=preprocessor.vocabulary)
    loaded = load_exported(path)
    texts = ["good morning", "", "terrible \U0001f621"]
    outputs = loaded.signatures["serving_default"](text=tf.constant(texts))
    probabilities = outputs["probabilities"]
    assert probabilities.dtype == tf.float32 and probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.numpy().sum(axis=-1), 1.0, atol=1e-5)
    expected = tf.nn.softmax(model(tf.constant(texts))).numpy()
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-3)
