"""Property tests of the preprocessing layer and the exported signature (in this process).

Arbitrary Unicode, invalid UTF-8, blank and megabyte strings never crash `TextPreprocessor`,
and its ids keep their contract: int32 in the vocabulary, one row per text, padding only at
the end, as wide as the longest row, and each row independent of the rest of the batch.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import BLANK, FUZZ, HUGE, RAW_BYTES, TEXT
from tfnlp.backend import tf
from tfnlp.preprocessing import TextPreprocessor

SEQUENCE_LENGTH = 16
LAYERS = {
    tokenizer: TextPreprocessor.from_texts(
        ["good car :)", "bad traffic", "我爱北京", "😀 fun"] * 3, vocab_size=60,
        tokenizer=tokenizer, sequence_length=SEQUENCE_LENGTH,
    )
    for tokenizer in ("word", "wordpiece")
}


def check_ids(layer, texts):
    """Runs `layer` on `texts` and checks the id contract; returns the ids."""
    ids = layer(tf.constant(texts, dtype=tf.string)).numpy()
    assert ids.dtype == np.int32
    assert ids.shape[0] == len(texts)
    assert 1 <= ids.shape[1] <= SEQUENCE_LENGTH
    assert ids.min() >= 0 and ids.max() < len(layer.vocabulary)
    # Id 0 is padding: once a row has it, the rest of the row is padding too.
    padded = np.cumsum(ids == 0, axis=1) > 0
    assert not (padded & (ids != 0)).any(), ids
    # The width is the longest row's: the last column holds a token unless all rows are empty.
    assert ids[:, -1].any() or ids.shape[1] == 1, ids
    # A row does not depend on its neighbours: the reversed batch gives the reversed rows.
    reversed_ids = layer(tf.constant(texts[::-1], dtype=tf.string)).numpy()
    np.testing.assert_array_equal(reversed_ids, ids[::-1])
    return ids


@FUZZ
@given(st.lists(st.one_of(TEXT, BLANK), min_size=1, max_size=8))
def test_layer_takes_any_unicode(texts):
    for layer in LAYERS.values():
        check_ids(layer, texts)


@FUZZ
@given(st.lists(RAW_BYTES, min_size=1, max_size=8))
def test_layer_takes_invalid_utf8_bytes(texts):
    for layer in LAYERS.values():
        check_ids(layer, texts)


@FUZZ
@given(st.lists(st.one_of(HUGE, TEXT, BLANK), min_size=1, max_size=3))
def test_layer_takes_huge_and_empty_strings_in_both_input_shapes(texts):
    for layer in LAYERS.values():
        ids = check_ids(layer, texts)
        # [batch, 1] (what a Keras Input(shape=(1,)) feeds) means the same as [batch].
        column = layer(tf.constant(texts, dtype=tf.string)[:, None]).numpy()
        np.testing.assert_array_equal(column, ids)


def test_layer_truncates_megabyte_strings():
    huge = ("word " * 250_000).encode() + b"\xff" + "中".encode() * 1000  # ~1.3 MB
    for layer in LAYERS.values():
        ids = layer(tf.constant([huge, b""])).numpy()
        assert ids.shape == (2, SEQUENCE_LENGTH)


def test_an_empty_batch_gives_no_rows():
    for layer in LAYERS.values():
        assert layer(tf.constant([], dtype=tf.string)).numpy().shape[0] == 0


@FUZZ
@given(st.lists(st.one_of(TEXT, RAW_BYTES, BLANK), min_size=1, max_size=8))
def test_exported_signature_takes_anything(served, texts):
    out = served(text=tf.constant(texts, dtype=tf.string))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (len(texts), 3)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert out["label_id"].numpy().tolist() == probabilities.argmax(axis=1).tolist()


def test_exported_signature_takes_a_megabyte_and_a_thousand_strings(served):
    out = served(text=tf.constant(["x" * 1_000_000] + ["ok :)"] * 999))
    assert out["probabilities"].shape == (1000, 3)


@pytest.fixture(scope="module")
def served(tiny_run):
    """The session's tiny export's serving_default signature, loaded here once."""
    import tensorflow_text  # noqa: F401  (registers the text ops)

    loaded = tf.saved_model.load(str(tiny_run.export_path))
    # Yielded, not returned: `loaded` stays referenced (a signature alone does not keep the
    # SavedModel's variables alive).
    yield loaded.signatures["serving_default"]
