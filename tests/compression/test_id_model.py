import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.compression.id_model import (
    CompressibleBidirectional,
    PaddingMask,
    build_id_model,
    takes_mask,
    text_model,
)


def test_id_model_matches_the_text_model(tiny_ids):
    id_model, model, ids, texts, length = tiny_ids
    assert id_model.input.dtype == tf.int32
    assert id_model.output.shape[-1] == model.output.shape[-1]
    # Padded to the full length with an explicit mask: the same logits as the string model.
    np.testing.assert_allclose(id_model(ids).numpy(), model(tf.constant(texts)).numpy(), atol=1e-5)
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


def test_text_model_is_strings_in_again(tiny_ids, tiny_preprocessor):
    id_model, model, _, texts, _ = tiny_ids
    rebuilt = text_model(tiny_preprocessor, id_model, "rebuilt")
    assert rebuilt.input.dtype == tf.string
    np.testing.assert_allclose(
        rebuilt(tf.constant(texts)).numpy(), model(tf.constant(texts)).numpy(), atol=1e-5
    )


def test_transformer_id_model_survives_full_integer_quantization():
    from tfnlp.compression import tflite
    from tfnlp.compression.interpreter import TFLiteClassifier
    from tfnlp.models.classifiers import build_transformer_classifier
    from tfnlp.preprocessing import TextPreprocessor

    keras.utils.set_random_seed(0)
    words = ["good", "bad", "day", "night"]
    texts = [" ".join(words[: 1 + i % 4] * (1 + i % 5)) for i in range(40)]  # 1..16 tokens
    preprocessor = TextPreprocessor.from_texts(texts, vocab_size=50, sequence_length=16)
    model = build_transformer_classifier(
        preprocessor, 3, embedding_dim=16, num_layers=1, num_heads=2, ff_dim=16, dropout=0.0
    )
    id_model = build_id_model(model)
    ids = np.zeros((len(texts), 16), np.int32)
    tokens = preprocessor(tf.constant(texts)).numpy()
    ids[:, : tokens.shape[1]] = tokens
    # Bounded mask score and looked-up reciprocal: the float logits are unchanged.
    np.testing.assert_allclose(id_model(ids).numpy(), model(tf.constant(texts)).numpy(), atol=1e-5)
    int8, _ = tflite.convert(
        id_model,
        "int8_full",
        batch_size=8,
        sequence_length=16,
        representative_ids=lambda: (ids[i : i + 8] for i in range(0, 40, 8)),
    )
    # Keras' mean pooling divides by the token count, and TFLite's int8 DIV rejects a raw-0
    # divisor; Keras' -1e9 mask blew the softmax input's int8 scale up to ~4e6.
    assert "DIV" not in tflite.op_counts(int8)["ops"]
    interpreter = tf.lite.Interpreter(model_content=int8)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    softmax = [op for op in interpreter._get_ops_details() if op["op_name"] == "SOFTMAX"]
    assert softmax and all(tensors[op["inputs"][0]]["quantization"][0] < 1.0 for op in softmax)
    # Every length 1..16 runs on the builtin kernels, and mostly agrees with float.
    predictions = TFLiteClassifier(int8, xnnpack=False).predict_ids(ids)
    assert (predictions == np.argmax(id_model(ids).numpy(), -1)).mean() >= 0.8
