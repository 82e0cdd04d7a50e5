import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.compression.id_model import (
    CompressibleBidirectional,
    PaddingMask,
    build_id_model,
    takes_mask,
    text_model,
)
from tfnlp.training.trainer import preprocessor_of


def test_id_model_matches_the_text_model(tiny_ids):
    id_model, model, ids, texts, length = tiny_ids
    assert id_model.input.dtype == tf.int32
    assert id_model.output.shape[-1] == model.output.shape[-1]
    # Padded to the full length with an explicit mask: the same logits as the string model.
    np.testing.assert_allclose(
        id_model(ids).numpy(), model(tf.constant(texts)).numpy(), atol=1e-5
    )
    assert any(isinstance(layer, CompressibleBidirectional) for layer in id_model.layers)
    assert sum(isinstance(layer, PaddingMask) for layer in id_model.layers) == 1


def test_id_model_refuses_models_without_preprocessor():
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    try:
        build_id_model(plain)
    except ValueError as error:
        assert "TextPreprocessor" in str(error)
    else:
        raise AssertionError("a model without TextPreprocessor was accepted")


def test_takes_mask():
    assert takes_mask(keras.layers.LSTM(2))
    assert not takes_mask(keras.layers.Dense(2))


def test_text_model_is_strings_in_again(tiny_ids):
    id_model, model, _, texts, _ = tiny_ids
    rebuilt = text_model(preprocessor_of(model), id_model, "rebuilt")
    assert rebuilt.input.dtype == tf.string
    np.testing.assert_allclose(
        rebuilt(tf.constant(texts)).numpy(), model(tf.constant(texts)).numpy(), atol=1e-5
    )
