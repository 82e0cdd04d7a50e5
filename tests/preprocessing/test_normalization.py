import pytest
import tensorflow_text as tf_text
from hypothesis import given, settings
from hypothesis import strategies as st

from tfnlp.backend import tf
from tfnlp.preprocessing import normalize_text, split_words
from tfnlp.preprocessing.normalization import _WHITESPACE_RUN, repair_utf8
from tfnlp.preprocessing.pretokenization import _KEPT, _LEADING_APOSTROPHE, _TRAILING_APOSTROPHE


def normalize(text, **options):
    return normalize_text(tf.constant([text]), **options).numpy()[0].decode("utf-8")


def words(text):
    return [w.decode("utf-8") for w in split_words(normalize_text(tf.constant([text])))[0].numpy()]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello   WORLD", "hello world"),
        ("ÇA VA? Straße", "ça va? strasse"),  # Unicode case folding, not ASCII lower()
        ("ＡＢＣ　ｆｕｌｌ-width", "abc full-width"),  # NFKC
        ("see https://t.co/x1 and www.a.com", "see xxurl and xxurl"),
        ("@Bob_1 hi @x", "xxuser hi xxuser"),
        ("3 cars, 1,000 miles, 2.5h, utf8", "xxnum cars, xxnum miles, 2.5h, utf8"),
        ("i <3 it", "i \u2665 it"),
        ("don’t", "don't"),
        ("", ""),
        ("\t\n  ", ""),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_options_turn_steps_off():
    assert (
        normalize(
            "Hi @Bob 42 http://x.io",
            lowercase=False,
            replace_mentions=False,
            replace_numbers=False,
            replace_urls=False,
        )
        == "Hi @Bob 42 http://x.io"
    )


def test_invalid_utf8_and_control_characters_are_replaced():
    out = normalize_text(tf.constant([b"ok \xff\xfe end\x00"])).numpy()[0].decode("utf-8")
    assert out == "ok \ufffd\ufffd end"


def test_max_bytes_truncates_without_breaking_characters():
    out = normalize_text(tf.constant(["é" * 100]), max_bytes=5).numpy()[0].decode("utf-8")
    assert out == "éé\ufffd"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So good :) but bad :-( ;P", ["so", "good", ":)", "but", "bad", ":-(", ";p"]),
        ("I don't 'like' it!!", ["i", "don't", "like", "it", "!", "!"]),
        ("#DeflateGate is dumb.", ["#", "deflategate", "is", "dumb", "."]),
        ("我爱北京", ["我", "爱", "北", "京"]),
        ("こんにちはworld", ["こ", "ん", "に", "ち", "は", "world"]),
        ("ภาษา", ["ภ", "า", "ษ", "า"]),
        ("😀👍 great", ["😀", "👍", "great"]),
        ("", []),
    ],
)
def test_split_words(text, expected):
    assert words(text) == expected


def test_emoticons_match_nltk_tweet_tokenizer_on_real_tweets():
    """nltk's TweetTokenizer is the reference: every emoticon it finds, we keep whole."""
    from nltk.tokenize.casual import EMOTICON_RE, TweetTokenizer

    from tfnlp.config import DataConfig
    from tfnlp.data import load_examples

    examples, _, _ = load_examples(DataConfig())
    tweets = [t for t in examples.texts if EMOTICON_RE.search(t) and ":" in t][:300]
    assert len(tweets) >= 50
    reference = TweetTokenizer(preserve_case=False)
    ours = split_words(normalize_text(tf.constant(tweets), replace_numbers=False)).to_list()
    checked = 0
    for tweet, tokens in zip(tweets, ours):
        tokens = {t.decode("utf-8") for t in tokens}
        for emoticon in reference.tokenize(tweet):
            if EMOTICON_RE.fullmatch(emoticon) and emoticon in (
                ":)",
                ":(",
                ":-)",
                ":-(",
                ":d",
                ":p",
                ";)",
                ":/",
            ):
                checked += 1
                assert emoticon in tokens, (tweet, emoticon, tokens)
    assert checked >= 20


# The fast paths must compute exactly what the plain ops compute: these pin the equivalences.
_BYTES = st.binary(max_size=24).map(
    lambda b: b.replace(b"a", b"\xed\xa0").replace(b"b", b"\xf4\x90").replace(b"c", b" \t")
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_BYTES, min_size=1, max_size=8))
def test_repair_utf8_equals_unicode_transcode(texts):
    texts = tf.constant(texts)
    expected = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
    assert repair_utf8(texts).numpy().tolist() == expected.numpy().tolist()


def test_repair_utf8_keeps_any_shape():
    assert repair_utf8(tf.constant(b"ok\xff")).numpy() == "ok\ufffd".encode()
    grid = repair_utf8(tf.constant([[b"a"], [b"\xc3"]]))
    assert grid.shape == (2, 1) and grid.numpy()[1, 0] == "\ufffd".encode()
    assert repair_utf8(tf.constant([], tf.string)).shape == (0,)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=" \t\n\f\r\x0bab", max_size=12), min_size=1, max_size=8))
def test_whitespace_run_rewrite_equals_collapsing_every_run(texts):
    texts = tf.constant(texts)
    expected = tf.strings.regex_replace(texts, r"\s+", " ")
    fast = tf.strings.regex_replace(texts, _WHITESPACE_RUN, " ")
    assert fast.numpy().tolist() == expected.numpy().tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=" ab'\":;()-=<3.!😀我", max_size=16), min_size=1, max_size=8))
def test_split_words_equals_regex_split_with_kept_delimiters(texts):
    texts = tf.constant(texts)
    spaced = tf.strings.regex_replace(texts, _LEADING_APOSTROPHE, r"\1 ")
    spaced = tf.strings.regex_replace(spaced, _TRAILING_APOSTROPHE, r" \1")
    expected = tf_text.regex_split(
        spaced, delim_regex_pattern=rf"\s+|{_KEPT}", keep_delim_regex_pattern=_KEPT
    )
    assert split_words(texts).to_list() == expected.to_list()


def _words_both_ways(texts):
    texts = tf.constant(texts)
    collapsed = split_words(normalize_text(texts))
    uncollapsed = split_words(normalize_text(texts, collapse_whitespace=False))
    return collapsed.to_list(), uncollapsed.to_list()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=" \t\n\u00a0\u3000\u200bab'\u2019:)@1,.<3😀", max_size=16),
                min_size=1, max_size=8))
def test_words_are_the_same_without_the_final_whitespace_collapse(texts):
    collapsed, uncollapsed = _words_both_ways(texts)
    assert uncollapsed == collapsed


def test_words_of_every_tweet_are_the_same_without_the_final_whitespace_collapse():
    from tfnlp.config import DataConfig
    from tfnlp.data import load_examples

    examples, _, _ = load_examples(DataConfig())
    assert len(examples.texts) == 38158
    collapsed, uncollapsed = _words_both_ways(list(examples.texts))
    assert uncollapsed == collapsed
