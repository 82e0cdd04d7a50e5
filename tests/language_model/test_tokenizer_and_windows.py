"""The LM tokenizer (in-graph, both kinds), the corpus reader/splitter and the tf.data windows."""

import json

import numpy as np
import pytest

from tests.layer_testing import run_preprocessing_layer_test
from tfnlp.backend import tf
from tfnlp.config.schema import DataConfig
from tfnlp.data.corpus import read_corpus, split_corpus
from tfnlp.data.records import DataError
from tfnlp.data.windows import build_windows, count_windows, token_stream
from tfnlp.preprocessing.lm_tokenizer import (
    EOS_ID,
    LM_RESERVED_TOKENS,
    UNK_ID,
    LanguageModelTokenizer,
)

TEXTS = ["hello world", "hold the door", "the world is old", "hello there"] * 10


@pytest.fixture(scope="module")
def characters():
    return LanguageModelTokenizer.from_texts(TEXTS, vocab_size=64)


def test_character_vocabulary_and_round_trip(characters):
    assert characters.vocabulary[:3] == LM_RESERVED_TOKENS
    # Most frequent first: "l" and "o" outnumber "w".
    assert characters.vocabulary.index("l") < characters.vocabulary.index("w")
    ids = characters(tf.constant(["Hello", "q"]))
    assert ids.row_lengths().numpy().tolist() == [6, 2]  # [EOS] + characters
    assert ids.to_list()[0][0] == EOS_ID and ids.to_list()[1][1] == UNK_ID
    assert characters.detokenize(ids).numpy().tolist() == [b"hello", b""]


def test_character_vocab_size_caps_the_vocabulary():
    layer = LanguageModelTokenizer.from_texts(TEXTS, vocab_size=5)
    assert layer.vocabulary_size == 5
    assert layer.vocabulary[3] == "l"  # the most frequent character


def test_wordpiece_round_trip():
    layer = LanguageModelTokenizer.from_texts(TEXTS, vocab_size=80, tokenizer="wordpiece")
    ids = layer(tf.constant(["hello world", "the door"]))
    assert [row[0] for row in ids.to_list()] == [EOS_ID, EOS_ID]
    assert layer.detokenize(ids).numpy().tolist() == [b"hello world", b"the door"]


@pytest.mark.parametrize("tokenizer", ["character", "wordpiece"])
def test_tokenizer_layer_harness(tokenizer):
    """Eager, tf.function, tf.data, config and SavedModel round trips: identical ragged ids."""
    layer = LanguageModelTokenizer.from_texts(TEXTS, vocab_size=64, tokenizer=tokenizer)
    run_preprocessing_layer_test(
        LanguageModelTokenizer,
        {"vocabulary": layer.vocabulary, "tokenizer": tokenizer, "max_bytes": 12},
        TEXTS[:4] + ["", "Hello @bob 42 http://x.io"],
        expected_output_dtype=tf.int32,
    )


def test_known_characters_give_known_ids():
    vocabulary = LM_RESERVED_TOKENS + ["a", "b", " "]
    run_preprocessing_layer_test(
        LanguageModelTokenizer,
        {"vocabulary": vocabulary, "max_bytes": 4},
        ["ab a", "Bc", "", "aaaaaa"],
        expected_output=[[EOS_ID, 3, 4, 5, 3], [EOS_ID, 4, UNK_ID], [EOS_ID], [EOS_ID, 3, 3, 3, 3]],
        expected_output_dtype=tf.int32,
    )


def test_tokenizer_config_saved_before_the_shared_base_still_loads():
    saved = {
        "name": "language_model_tokenizer",
        "trainable": False,
        "dtype": "float32",
        "vocabulary": LM_RESERVED_TOKENS + ["h", "i"],
        "tokenizer": "character",
        "lowercase": False,
        "replace_urls": True,
        "replace_mentions": True,
        "replace_numbers": True,
        "max_bytes": 100,
    }
    layer = LanguageModelTokenizer.from_config(saved)
    assert layer.get_config() == saved
    assert layer(tf.constant(["hiH"])).to_list() == [[EOS_ID, 3, 4, UNK_ID]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary": ["[PAD]", "[UNK]", "a"]}, "must start with"),
        ({"vocabulary": LM_RESERVED_TOKENS, "tokenizer": "bpe"}, "`tokenizer` must be one of"),
        ({"vocabulary": LM_RESERVED_TOKENS, "max_bytes": 0}, "`max_bytes` must be"),
    ],
)
def test_tokenizer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LanguageModelTokenizer(**kwargs)


def test_token_stream_separates_texts_with_eos(characters):
    stream = token_stream(["he", "l"], characters)
    h, e, ell = (characters.vocabulary.index(x) for x in "hel")
    assert stream.tolist() == [EOS_ID, h, e, EOS_ID, ell, EOS_ID]
    assert stream.dtype == np.int32


def test_windows_are_shifted_by_one_with_the_stride():
    stream = np.arange(20, dtype=np.int32)
    batches = list(build_windows(stream, sequence_length=4, stride=3, batch_size=4))
    inputs = np.concatenate([b[0].numpy() for b in batches])
    targets = np.concatenate([b[1].numpy() for b in batches])
    assert count_windows(20, 4, 3) == 6 == len(inputs)
    assert inputs[1].tolist() == [3, 4, 5, 6] and targets[1].tolist() == [4, 5, 6, 7]
    assert inputs[-1].tolist() == [15, 16, 17, 18] and targets[-1].tolist() == [16, 17, 18, 19]


def test_shuffled_windows_are_a_seeded_permutation():
    stream = np.arange(50, dtype=np.int32)

    def starts(seed):
        dataset = build_windows(stream, sequence_length=4, stride=4, batch_size=100,
                                shuffle=True, seed=seed)
        return next(iter(dataset))[0].numpy()[:, 0].tolist()

    assert sorted(starts(1)) == list(range(0, 45, 4))
    assert starts(1) == starts(1) and starts(1) != list(range(0, 45, 4))


def test_windows_need_a_long_enough_stream():
    with pytest.raises(DataError, match="shorter than one window"):
        build_windows(np.arange(4, dtype=np.int32), sequence_length=4, stride=1, batch_size=2)


def test_read_corpus_from_text_csv_and_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\n  second line \n")
    (tmp_path / "b.csv").write_text("id,body\n1,one\n2,\n3,three\n")
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in ["x", "y"]))
    assert read_corpus(DataConfig(source=str(tmp_path / "a.txt"))) == ["first line",
                                                                      "second line"]
    assert read_corpus(DataConfig(source=str(tmp_path / "b.csv"), text_column="body")) == [
        "one", "three"]
    assert read_corpus(DataConfig(source=str(tmp_path / "c.jsonl"))) == ["x", "y"]
    with pytest.raises(DataError, match="no column 'text'"):
        read_corpus(DataConfig(source=str(tmp_path / "b.csv")))


def test_read_corpus_tweets_limit():
    texts = read_corpus(DataConfig(source="tweets", limit=50), seed=1)
    assert len(texts) == 50 and all(isinstance(t, str) and t for t in texts)


def test_split_corpus_is_seeded_and_disjoint():
    texts = [f"text {i}" for i in range(100)]
    splits = split_corpus(texts, 0.1, 0.2, seed=3)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [70, 10, 20]
    assert sorted(sum(splits.values(), [])) == sorted(texts)
    assert split_corpus(texts, 0.1, 0.2, seed=3) == splits


def test_language_model_config_is_validated():
    from tfnlp.config import ConfigError, load_pipeline

    config = load_pipeline("pipelines/tweets_lm.yaml")
    assert config.task == "language_model" and config.language_model.tokenizer == "wordpiece"
    assert config.model.name == "transformer" and config.language_model.tie_embeddings
    classic = load_pipeline("pipelines/tweets_lm_char.yaml")
    assert (classic.language_model.tokenizer, classic.model.name) == ("character", "lstm")
    with pytest.raises(ConfigError, match="`model.name` must be 'lstm' or 'transformer'"):
        load_pipeline("pipelines/tweets_lm.yaml", ["model.name=bilstm"])
    with pytest.raises(ConfigError, match="`language_model.stride` must be >= 1"):
        load_pipeline("pipelines/tweets_lm.yaml", ["language_model.stride=0"])
    with pytest.raises(ConfigError, match="`language_model.tokenizer` must be one of"):
        load_pipeline("pipelines/tweets_lm.yaml", ["language_model.tokenizer=bpe"])
