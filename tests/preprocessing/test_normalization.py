import pytest

from tfnlp.backend import tf
from tfnlp.preprocessing import normalize_text, split_words


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
    assert normalize("Hi @Bob 42 http://x.io", lowercase=False, replace_mentions=False,
                     replace_numbers=False, replace_urls=False) == "Hi @Bob 42 http://x.io"


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
            if EMOTICON_RE.fullmatch(emoticon) and emoticon in (":)", ":(", ":-)", ":-(", ":d",
                                                                  ":p", ";)", ":/"):
                checked += 1
                assert emoticon in tokens, (tweet, emoticon, tokens)
    assert checked >= 20
