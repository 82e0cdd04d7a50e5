"""Property tests: arbitrary text never crashes preprocessing or the loaders, shapes stay right."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfnlp.backend import tf
from tfnlp.data import read_texts
from tfnlp.preprocessing import TextPreprocessor

SEQUENCE_LENGTH = 16
LAYERS = {
    tokenizer: TextPreprocessor.from_texts(
        ["good car :)", "bad traffic", "我爱北京", "😀 fun"] * 3, vocab_size=60,
        tokenizer=tokenizer, sequence_length=SEQUENCE_LENGTH,
    )
    for tokenizer in ("word", "wordpiece")
}

# Characters that break naive text code: controls, zero-width, bidi marks, emoji modifiers.
TRICKY = st.sampled_from(
    ["\x00", "\u200b", "\u200d", "\u200e", "\u202e", "\ufeff", "\U0001f44d\U0001f3fd",
     "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
     "中文", "ไทย", ":)", "\r\n", "\t", "\ufffd", "e\u0301"]
)
TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(TRICKY, st.text(max_size=5)), max_size=30).map("".join),
)
RAW_BYTES = st.binary(max_size=300)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_ids(ids, batch):
    assert ids.dtype == np.int32
    assert ids.shape[0] == batch
    assert 1 <= ids.shape[1] <= SEQUENCE_LENGTH
    assert ids.min() >= 0 and ids.max() < 60


@FUZZ
@given(st.lists(TEXT, min_size=1, max_size=8))
def test_layer_takes_any_unicode(texts):
    for layer in LAYERS.values():
        check_ids(layer(tf.constant(texts)).numpy(), len(texts))


@FUZZ
@given(st.lists(RAW_BYTES, min_size=1, max_size=8))
def test_layer_takes_invalid_utf8_bytes(texts):
    for layer in LAYERS.values():
        check_ids(layer(tf.constant(texts, dtype=tf.string)).numpy(), len(texts))


def test_layer_truncates_megabyte_strings():
    huge = ("word " * 250_000).encode() + b"\xff" + "中".encode() * 1000  # ~1.3 MB
    for layer in LAYERS.values():
        ids = layer(tf.constant([huge, b""])).numpy()
        assert ids.shape == (2, SEQUENCE_LENGTH)


@FUZZ
@given(st.lists(st.tuples(TEXT, st.sampled_from(["pos", "neg", ""])), max_size=20))
def test_jsonl_loader_never_crashes_and_accounts_for_every_row(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("fuzz") / "d.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in rows),
                    encoding="utf-8")
    examples, report = read_texts(path, on_bad_row="skip")
    assert report.rows_read == report.rows_kept + report.rows_skipped
    assert report.rows_kept == len(examples)
    expected = sum(1 for t, lab in rows if t.strip() and lab)
    assert len(examples) == expected


@FUZZ
@given(RAW_BYTES)
def test_csv_loader_on_arbitrary_bytes_gives_rows_or_a_clear_error(tmp_path_factory, tail):
    from tfnlp.data import DataError

    path = tmp_path_factory.mktemp("fuzz") / "d.csv"
    path.write_bytes(b"text,label\n" + tail)
    try:
        examples, report = read_texts(path, on_bad_row="skip")
    except DataError as error:  # only header problems may stop a skip-mode read
        assert str(path) in str(error)
        return
    assert report.rows_read == report.rows_kept + report.rows_skipped
    assert all(isinstance(t, str) and t.strip() for t in examples.texts)


@pytest.fixture(scope="module")
def served(tiny_run):
    import tensorflow_text  # noqa: F401  (registers the text ops)

    loaded = tf.saved_model.load(str(tiny_run.export_path))
    return loaded, loaded.signatures["serving_default"]


@FUZZ
@given(st.lists(st.one_of(TEXT, RAW_BYTES), min_size=1, max_size=8))
def test_exported_signature_takes_anything(served, texts):
    _, signature = served
    out = signature(text=tf.constant(texts, dtype=tf.string))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (len(texts), 3)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert out["label_id"].numpy().tolist() == probabilities.argmax(axis=1).tolist()


def test_exported_signature_takes_a_megabyte_and_a_thousand_strings(served):
    _, signature = served
    out = signature(text=tf.constant(["x" * 1_000_000] + ["ok :)"] * 999))
    assert out["probabilities"].shape == (1000, 3)
