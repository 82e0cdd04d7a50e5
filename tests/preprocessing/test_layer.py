import collections

import numpy as np
import pytest

from tfnlp.backend import keras, tf
from tfnlp.preprocessing import RESERVED_TOKENS, TextPreprocessor, learn_vocabulary, load_stopwords

TEXTS = [
    "I love this car :) #happy",
    "I hate driving in traffic :(",
    "@bob the car is ok http://t.co/x 42",
    "我爱北京天安门 😀",
    "",
]


@pytest.fixture(scope="module", params=["word", "wordpiece"])
def layer(request):
    return TextPreprocessor.from_texts(TEXTS * 3, vocab_size=80, tokenizer=request.param,
                                       sequence_length=12)


def test_output_is_int32_padded_to_the_longest_row(layer):
    ids = layer(tf.constant(TEXTS)).numpy()
    assert ids.dtype == np.int32
    lengths = layer.tokenize(tf.constant(TEXTS)).row_lengths().numpy()
    assert ids.shape == (5, min(lengths.max(), 12))
    assert (ids[4] == 0).all()  # empty text: all padding
    for row, length in zip(ids, lengths):
        assert (row[:length] > 0).all() and (row[length:] == 0).all()


def test_known_words_map_to_their_ids_and_cjk_is_not_one_unknown(layer):
    ids = layer(tf.constant(["我爱北京天安门"])).numpy()[0]
    assert (ids > 1).sum() == 7  # one known token per character
    vocab = layer.vocabulary
    car = layer(tf.constant(["car"])).numpy()[0]
    assert [vocab[i] for i in car if i] == ["car"]


def test_truncates_long_inputs(layer):
    huge = " ".join(["car"] * 200_000)  # ~800 kB
    ids = layer(tf.constant([huge, "car"])).numpy()
    assert ids.shape == (2, 12)
    assert (ids[0] > 0).all()


def test_accepts_batch_by_one_inputs(layer):
    flat = layer(tf.constant(TEXTS)).numpy()
    column = layer(tf.constant(TEXTS)[:, tf.newaxis]).numpy()
    np.testing.assert_array_equal(flat, column)


def test_same_ids_in_tf_data_batched_and_unbatched(layer):
    direct = layer(tf.constant(TEXTS[:4])).numpy()
    batched = next(iter(tf.data.Dataset.from_tensor_slices(TEXTS[:4]).batch(4).map(layer)))
    np.testing.assert_array_equal(direct, batched.numpy())
    singles = [layer(tf.constant([t])).numpy()[0] for t in TEXTS[:4]]
    for row, single in zip(direct, singles):
        np.testing.assert_array_equal(row[: len(single)], single)


def test_config_round_trip(layer):
    clone = TextPreprocessor.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(clone(tf.constant(TEXTS)).numpy(),
                                  layer(tf.constant(TEXTS)).numpy())


def test_survives_saved_model_round_trip(layer, tmp_path):
    module = tf.Module()
    module.layer = layer
    module.serve = tf.function(
        lambda texts: layer(texts), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    tf.saved_model.save(module, str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.serve(tf.constant(TEXTS)).numpy(),
                                  layer(tf.constant(TEXTS)).numpy())


def test_keras_model_save_and_safe_load(layer, tmp_path):
    inputs = keras.Input(shape=(), dtype=tf.string)
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded(tf.constant(TEXTS)).numpy(),
                                  model(tf.constant(TEXTS)).numpy())


def test_stopwords_are_removed_when_given():
    layer = TextPreprocessor.from_texts(TEXTS, vocab_size=80, tokenizer="word",
                                        stopwords=["i", "the", "is"])
    tokens = layer.split_words(tf.constant(["I think the car is not ok"])).to_list()[0]
    assert tokens == [b"think", b"car", b"not", b"ok"]


def test_stopwords_file_and_missing_corpus_message(tmp_path, monkeypatch):
    path = tmp_path / "stop.txt"
    path.write_text("The\nis\n\n a \n")
    assert load_stopwords(str(path)) == ["a", "is", "the"]
    with pytest.raises(FileNotFoundError, match="preprocessing.stopwords_file"):
        load_stopwords(str(tmp_path / "missing.txt"))
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "no_nltk_data")])
    with pytest.raises(LookupError, match="nltk.downloader stopwords"):
        load_stopwords()


def test_vocabulary_learning():
    counts = {"car": 10, "cars": 5, "carpet": 3, "rare": 1}
    words = learn_vocabulary(collections.Counter(counts), tokenizer="word",
                             vocab_size=4)
    assert words == RESERVED_TOKENS + ["car", "cars"]
    pieces = learn_vocabulary(collections.Counter(counts), tokenizer="wordpiece",
                              vocab_size=40)
    assert pieces[:2] == RESERVED_TOKENS
    assert "car" in pieces and "##s" in pieces


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary": ["a", "b"]}, r"`vocabulary` must start with \['\[PAD\]', '\[UNK\]'\]"),
        ({"vocabulary": RESERVED_TOKENS, "tokenizer": "bpe"}, "`tokenizer` must be one of"),
        ({"vocabulary": RESERVED_TOKENS, "sequence_length": 0},
         "`sequence_length` must be a positive"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextPreprocessor(**kwargs)
