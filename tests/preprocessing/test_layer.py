import collections

import numpy as np
import pytest

from tests.layer_testing import run_preprocessing_layer_test
from tfnlp.backend import keras, tf
from tfnlp.preprocessing import (
    RESERVED_TOKENS,
    LanguageModelTokenizer,
    NormalizingTokenizer,
    TextPreprocessor,
    learn_vocabulary,
    load_stopwords,
    normalize_text,
)
from tfnlp.preprocessing.lm_tokenizer import LM_RESERVED_TOKENS

TEXTS = [
    "I love this car :) #happy",
    "I hate driving in traffic :(",
    "@bob the car is ok http://t.co/x 42",
    "我爱北京天安门 😀",
    "",
]


@pytest.fixture(scope="module", params=["word", "wordpiece"])
def layer(request):
    return TextPreprocessor.from_texts(
        TEXTS * 3, vocab_size=80, tokenizer=request.param, sequence_length=12
    )


def test_output_is_int32_padded_to_the_longest_row(layer):
    ids = layer(tf.constant(TEXTS)).numpy()
    assert ids.dtype == np.int32
    lengths = layer.tokenize(tf.constant(TEXTS)).row_lengths().numpy()
    assert ids.shape == (5, min(lengths.max(), 12))
    assert (ids[4] == 0).all()  # empty text: all padding
    for row, length in zip(ids, lengths):
        assert (row[:length] > 0).all() and (row[length:] == 0).all()


def test_fixed_length_pads_every_batch_to_sequence_length_with_a_static_shape(layer):
    fixed = TextPreprocessor.from_config({**layer.get_config(), "fixed_length": True})
    short = tf.constant(["car", ""])
    ids = fixed(short).numpy()
    assert ids.shape == (2, 12)
    np.testing.assert_array_equal(ids[:, :1], layer(short).numpy())
    assert (ids[:, 1:] == 0).all()
    assert keras.Model(*_string_in(fixed)).output_shape == (None, 12)
    assert keras.Model(*_string_in(layer)).output_shape == (None, None)


def _string_in(layer):
    text = keras.Input(shape=(), dtype=tf.string)
    return text, layer(text)


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


def test_layer_harness(layer):
    """Eager, tf.function, tf.data, config and SavedModel round trips: identical int32 ids."""
    run_preprocessing_layer_test(
        TextPreprocessor,
        {"vocabulary": layer.vocabulary, "tokenizer": layer.tokenizer, "sequence_length": 12},
        TEXTS,
        expected_output=layer(tf.constant(TEXTS)),
        expected_output_dtype=tf.int32,
    )


def test_a_batch_gives_each_text_its_own_ids(layer):
    direct = layer(tf.constant(TEXTS[:4])).numpy()
    singles = [layer(tf.constant([t])).numpy()[0] for t in TEXTS[:4]]
    for row, single in zip(direct, singles):
        np.testing.assert_array_equal(row[: len(single)], single)


@pytest.mark.parametrize(
    "tokenizer, vocabulary, texts, expected",
    [
        (
            "word",
            ["i", "love", "xxurl", "xxuser", "xxnum", ":)", "!"],
            ["I love @bob :)", "http://x.io 42 !!", "unknown"],
            [[2, 3, 5, 7], [4, 6, 8, 8], [1, 0, 0, 0]],
        ),
        ("wordpiece", ["car", "##s", "xxnum"], ["Cars 3", "carpet"], [[2, 3, 4], [1, 0, 0]]),
    ],
)
def test_known_vocabulary_gives_known_ids(tokenizer, vocabulary, texts, expected):
    run_preprocessing_layer_test(
        TextPreprocessor,
        {"vocabulary": RESERVED_TOKENS + vocabulary, "tokenizer": tokenizer},
        texts,
        expected_output=expected,
        expected_output_dtype=tf.int32,
    )


def test_config_saved_before_the_shared_base_still_loads():
    saved = {
        "name": "text_preprocessor",
        "trainable": False,
        "dtype": "float32",
        "vocabulary": RESERVED_TOKENS + ["car"],
        "tokenizer": "word",
        "sequence_length": 8,
        "lowercase": True,
        "replace_urls": True,
        "replace_mentions": False,
        "replace_numbers": True,
        "stopwords": ["the"],
    }
    layer = TextPreprocessor.from_config(saved)
    assert layer.get_config() == saved
    assert layer(tf.constant(["the CAR @x"])).numpy().tolist() == [[2, 1, 1]]


def test_both_tokenizer_layers_normalize_exactly_like_normalize_text():
    texts = tf.constant(TEXTS + ["ÇA VA @Bob 3 www.x.io", "x" * 2000])
    options = {"lowercase": False, "replace_mentions": False}
    classifier = TextPreprocessor(RESERVED_TOKENS, "word", sequence_length=8, **options)
    language_model = LanguageModelTokenizer(LM_RESERVED_TOKENS, max_bytes=8 * 64, **options)
    expected = normalize_text(texts, max_bytes=8 * 64, **options).numpy().tolist()
    for layer in (classifier, language_model):
        assert isinstance(layer, NormalizingTokenizer)
        assert layer.normalize(texts).numpy().tolist() == expected


def test_keras_model_save_and_safe_load(layer, tmp_path):
    inputs = keras.Input(shape=(), dtype=tf.string)
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(
        loaded(tf.constant(TEXTS)).numpy(), model(tf.constant(TEXTS)).numpy()
    )


def test_stopwords_are_removed_when_given():
    layer = TextPreprocessor.from_texts(
        TEXTS, vocab_size=80, tokenizer="word", stopwords=["i", "the", "is"]
    )
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
    words = learn_vocabulary(collections.Counter(counts), tokenizer="word", vocab_size=4)
    assert words == RESERVED_TOKENS + ["car", "cars"]
    pieces = learn_vocabulary(collections.Counter(counts), tokenizer="wordpiece", vocab_size=40)
    assert pieces[:2] == RESERVED_TOKENS
    assert "car" in pieces and "##s" in pieces


@pytest.mark.parametrize("learner", ["huggingface", "tensorflow_text"])
def test_both_wordpiece_learners_give_what_fast_wordpiece_reads(learner):
    counts = collections.Counter({"car": 10, "cars": 5, "carpet": 3, "pet": 4, "rare": 1})
    pieces = learn_vocabulary(counts, tokenizer="wordpiece", vocab_size=30, learner=learner)
    assert pieces[:2] == RESERVED_TOKENS and len(pieces) == len(set(pieces)) <= 30
    assert "car" in pieces and "##s" in pieces
    assert pieces == learn_vocabulary(counts, tokenizer="wordpiece", vocab_size=30,
                                      learner=learner)
    layer = TextPreprocessor(pieces, sequence_length=8)
    ids = layer(tf.constant(["cars carpet"])).numpy()[0]
    # Every word splits into known pieces (no [UNK]): "car ##s car ##pet"-like.
    assert 1 not in ids and (ids > 0).sum() >= 2


def test_the_hugging_face_learner_breaks_ties_the_same_way_every_time():
    # Seven equally frequent merges "a" + "##x", room for two. The trainer breaks such ties
    # by the ids it gave "##x", which it numbers in hash order (random per call) unless
    # they are pinned: pinned in sorted order, "ab" and "ac" win every time.
    counts = collections.Counter({w: 5 for w in ["ah", "ag", "af", "ae", "ad", "ac", "ab"]})
    for _ in range(5):
        pieces = learn_vocabulary(counts, tokenizer="wordpiece", vocab_size=19,
                                  learner="huggingface")
        assert pieces[-2:] == ["ab", "ac"] and len(pieces) == 19


def test_the_hugging_face_learner_leaves_out_words_with_the_rarest_characters(monkeypatch):
    # The alphabet is cut here, ties by code point, not in the trainer's hash order.
    # "d" and "e" are equally rare and there is room for one of them: "d" stays.
    monkeypatch.setattr("tfnlp.preprocessing.vocabulary.MAX_UNIQUE_CHARACTERS", 4)
    counts = collections.Counter({"abc": 4, "abe": 1, "abd": 1})
    pieces = learn_vocabulary(counts, tokenizer="wordpiece", vocab_size=30)
    assert {"d", "##d"} <= set(pieces) and not {"e", "##e"} & set(pieces)


def test_an_unknown_learner_is_refused():
    with pytest.raises(ValueError, match="`learner` must be one of .*Received: learner='bpe'"):
        learn_vocabulary(collections.Counter({"a": 2}), tokenizer="wordpiece", vocab_size=8,
                         learner="bpe")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary": ["a", "b"]}, r"`vocabulary` must start with \['\[PAD\]', '\[UNK\]'\]"),
        ({"vocabulary": RESERVED_TOKENS, "tokenizer": "bpe"}, "`tokenizer` must be one of"),
        (
            {"vocabulary": RESERVED_TOKENS, "sequence_length": 0},
            "`sequence_length` must be a positive",
        ),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextPreprocessor(**kwargs)
