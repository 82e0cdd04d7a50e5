import numpy as np
import pytest

from tfnlp.backend import keras, tf
from tfnlp.config import ModelConfig
from tfnlp.models import MODEL_NAMES, PositionEmbedding, TransformerEncoderBlock, build_model
from tfnlp.preprocessing import TextPreprocessor
from tfnlp.training.precision import precision_scope

TEXTS = ["good car :)", "bad traffic :(", "ok ride", "love it", "hate it", "meh"] * 8
LABELS = np.array([2, 0, 1, 2, 0, 1] * 8)
SMALL = dict(embedding_dim=16, units=8, num_layers=2, num_heads=2, ff_dim=16, dropout=0.1)


@pytest.fixture(scope="module")
def preprocessor():
    return TextPreprocessor.from_texts(TEXTS, vocab_size=60, tokenizer="word", sequence_length=8)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_trains_and_outputs_float32_logits(name, preprocessor):
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name=name, **SMALL), preprocessor, num_classes=3)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    texts = tf.constant(TEXTS)
    history = model.fit(texts, LABELS, batch_size=16, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] * 0.8, losses
    logits = model(tf.constant(["good car", "", "我爱你"]))
    assert logits.shape == (3, 3)
    assert logits.dtype == tf.float32


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_dtypes(name, policy, preprocessor):
    with precision_scope(policy):
        model = build_model(ModelConfig(name=name, **SMALL), preprocessor, num_classes=3)
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing leaked
    compute = policy.split("_")[1]
    assert all(w.dtype == tf.float32 for w in model.weights)
    assert model.get_layer("embedding").compute_dtype == compute
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model(tf.constant(["good car"])).dtype == tf.float32


def test_padding_does_not_change_transformer_or_lstm_outputs(preprocessor):
    """Masking: a text's logits do not depend on how long its batch-mates are."""
    for name in MODEL_NAMES:
        model = build_model(ModelConfig(name=name, **SMALL), preprocessor, num_classes=3)
        alone = model(tf.constant(["good car"]), training=False).numpy()
        padded = model(tf.constant(["good car", "love it ok ride bad traffic"]),
                       training=False).numpy()[:1]
        np.testing.assert_allclose(alone, padded, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("name, num_layers", [("lstm", 2), ("bilstm", 1)])
def test_unrolled_lstms_compute_what_the_loop_computes(name, num_layers):
    """`model.unroll`: the same weights give the same logits, at the one static length."""
    fixed = TextPreprocessor.from_texts(TEXTS, vocab_size=60, tokenizer="word",
                                        sequence_length=8, fixed_length=True)
    sizes = {**SMALL, "num_layers": num_layers}
    looped = build_model(ModelConfig(name=name, **sizes), fixed, num_classes=3)
    unrolled = build_model(ModelConfig(name=name, unroll=True, **sizes), fixed, num_classes=3)
    unrolled.set_weights(looped.get_weights())
    texts = tf.constant(["good car", "love it ok ride bad traffic", ""])
    np.testing.assert_allclose(unrolled(texts, training=False).numpy(),
                               looped(texts, training=False).numpy(), atol=1e-5)
    assert unrolled.get_layer("embedding").output_shape == (None, 8, 16)  # the static length


def test_functional_model_saves_and_safe_loads(preprocessor, tmp_path):
    model = build_model(ModelConfig(name="transformer", **SMALL), preprocessor, num_classes=3)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    texts = tf.constant(["good car", "hate it"])
    np.testing.assert_allclose(loaded(texts).numpy(), model(texts).numpy(), atol=1e-6)


def test_custom_layers_config_round_trip():
    block = TransformerEncoderBlock(num_heads=2, ff_dim=8, dropout=0.2)
    config = block.get_config()
    assert TransformerEncoderBlock.from_config(config).get_config() == config
    position = PositionEmbedding(sequence_length=5)
    assert PositionEmbedding.from_config(position.get_config()).sequence_length == 5


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: TransformerEncoderBlock(num_heads=0, ff_dim=8), "`num_heads` must be a positive"),
        (lambda: PositionEmbedding(sequence_length=0), "`sequence_length` must be a positive"),
    ],
)
def test_invalid_layer_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_width_must_divide_into_heads():
    block = TransformerEncoderBlock(num_heads=3, ff_dim=8)
    with pytest.raises(ValueError, match="must be divisible by `num_heads`"):
        block(tf.zeros([1, 4, 16]))
