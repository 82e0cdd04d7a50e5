"""Length bucketing, measured padding, and tokenizing in the tf.data map."""

import collections

import numpy as np
import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.backend import keras, tf
from tfnlp.config import load_pipeline
from tfnlp.data import build_dataset, load_examples
from tfnlp.data.bucketing import (
    DEFAULT_BUCKET_WIDTH,
    bucket_boundaries,
    count_padding,
    length_batches,
    measure_padding,
    token_lengths,
)
from tfnlp.data.pipeline import first_epoch_order
from tfnlp.data.records import LabelledTexts
from tfnlp.models import build_model
from tfnlp.preprocessing import TextPreprocessor
from tfnlp.training.input_pipeline import ids_model, tokenize_in_dataset, use_length_bucketing


@pytest.fixture(scope="module")
def tweets():
    config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", ["data.limit=2000"])
    examples, labels, _ = load_examples(config.data, seed=0)
    preprocessor = TextPreprocessor.from_texts(examples.texts, vocab_size=2000)
    return examples, labels, preprocessor, token_lengths(preprocessor.tokenize, examples.texts)


def test_bucket_boundaries():
    assert bucket_boundaries(64, 4) == list(range(5, 65, 4))
    assert bucket_boundaries(3, 4) == [4]
    assert bucket_boundaries(8, 1)[:3] == [2, 3, 4]
    for bad in ({"max_length": 0}, {"max_length": 8, "width": 0}, {"max_length": 8.5}):
        with pytest.raises(ValueError, match="must be a positive integer"):
            bucket_boundaries(**bad)


def test_token_lengths_match_the_model_ids(tweets):
    examples, _, preprocessor, lengths = tweets
    ids = preprocessor(tf.constant(examples.texts[:300])).numpy()
    np.testing.assert_array_equal(lengths[:300], (ids != 0).sum(axis=1))
    assert lengths.dtype == np.int32 and lengths.shape == (2000,)
    assert lengths.max() <= preprocessor.sequence_length


def test_measure_padding_counts_exactly():
    lengths = tf.data.Dataset.from_tensor_slices(
        (["a"] * 5, np.array([1, 3, 2, 0, 4], np.int32))).batch(2)
    # batches: [1, 3] → 6 positions, 4 real; [2, 0] → 4, 2; [4] → 4, 4.
    report = measure_padding(lengths)
    assert (report.batches, report.real_tokens, report.padded_tokens) == (3, 10, 4)
    assert report.padded_fraction == pytest.approx(4 / 14)
    assert report.to_dict()["padded_fraction"] == pytest.approx(4 / 14)
    fixed = measure_padding(lengths, fixed_length=5)  # every batch padded to 5 steps
    assert (fixed.batches, fixed.real_tokens, fixed.padded_tokens) == (3, 10, 15)


def test_bucketing_keeps_every_example_and_cuts_padding(tweets):
    examples, labels, _, lengths = tweets
    options = dict(batch_size=64, shuffle=True, seed=3, token_lengths=lengths, keep_lengths=True)
    bucketed = build_dataset(examples, labels, bucket_width=DEFAULT_BUCKET_WIDTH, **options)
    texts, sizes = [], []
    for text, _, *_, batch_lengths in bucketed:
        texts += [t.decode() for t in text.numpy()]
        sizes.append(len(batch_lengths))
        assert batch_lengths.numpy().max() - batch_lengths.numpy().min() < DEFAULT_BUCKET_WIDTH
    assert collections.Counter(texts) == collections.Counter(examples.texts)
    assert max(sizes) == 64
    with_buckets = measure_padding(bucketed)
    without = measure_padding(build_dataset(examples, labels, **options))
    assert with_buckets.real_tokens == without.real_tokens == int(lengths.sum())
    assert with_buckets.padded_fraction <= 0.15
    assert without.padded_fraction > 2 * with_buckets.padded_fraction
    # The lengths are dropped unless asked for: (text, label) as without bucketing.
    plain = build_dataset(examples, labels, batch_size=64, token_lengths=lengths,
                          bucket_width=DEFAULT_BUCKET_WIDTH)
    assert plain.element_spec == build_dataset(examples, labels, batch_size=64).element_spec
    assert [spec.dtype for spec in plain.element_spec] == [tf.string, tf.int32]


def test_partial_bucket_batches_are_shuffled_across_the_whole_epoch(tweets):
    examples, labels, _, lengths = tweets
    # 10x the tweets: 313 batches, far more than a window of 64 batches could mix.
    many = LabelledTexts(examples.texts * 10, examples.labels * 10)
    bucketed = build_dataset(many, labels, batch_size=64, shuffle=True, seed=3,
                             token_lengths=np.tile(lengths, 10),
                             bucket_width=DEFAULT_BUCKET_WIDTH)
    sizes = [len(text) for text, _ in bucketed]
    assert sum(sizes) == len(many)
    partial = [index for index, size in enumerate(sizes) if size < 64]
    # Unshuffled, every partial batch comes last, a burst right before validation; shuffled
    # in a window, they stay among the last 64. Over the whole epoch, some land early.
    assert len(partial) >= 3
    assert min(partial) < len(sizes) // 2


def test_bucketing_needs_lengths(tweets):
    examples, labels, _, _ = tweets
    with pytest.raises(ValueError, match="`token_lengths` must be given"):
        build_dataset(examples, labels, batch_size=8, bucket_width=4)


def test_tokenizing_in_the_dataset_gives_the_model_ids(tweets):
    examples, labels, preprocessor, lengths = tweets
    config = load_pipeline(REPO / "pipelines" / "tweets_transformer.yaml", TINY_OVERRIDES)
    model = build_model(config.model, preprocessor, len(labels))
    model_ids = keras.Model(model.input, model.get_layer(index=1).output)
    batches = build_dataset(examples, labels, batch_size=128, token_lengths=lengths,
                            bucket_width=DEFAULT_BUCKET_WIDTH)
    from_ids = ids_model(model)
    checked = 0
    for (texts, *_), (ids, *_) in zip(batches.take(4), tokenize_in_dataset(batches, preprocessor)
                                      .take(4)):
        assert ids.dtype == tf.int32
        np.testing.assert_array_equal(ids.numpy(), model_ids(texts).numpy())
        np.testing.assert_allclose(from_ids(ids).numpy(), model(texts).numpy(), atol=1e-5)
        checked += 1
    assert checked == 4
    # Same layers, so the same weights.
    assert {id(v) for v in from_ids.weights} <= {id(v) for v in model.weights}


def test_a_fixed_length_preprocessor_gives_the_ids_model_a_static_length(tweets):
    _, labels, preprocessor, _ = tweets
    config = load_pipeline(REPO / "pipelines" / "tweets_bilstm.yaml", TINY_OVERRIDES)
    fixed = TextPreprocessor.from_config({**preprocessor.get_config(), "fixed_length": True})
    from_ids = ids_model(build_model(config.model, fixed, len(labels)))
    assert from_ids.input_shape == (None, fixed.sequence_length)
    assert ids_model(build_model(config.model, preprocessor, len(labels))).input_shape == (
        None, None)


def test_ids_model_refuses_a_model_without_preprocessor():
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="first layer is a TextPreprocessor"):
        ids_model(model)


@pytest.mark.parametrize("name, setting, expected", [
    ("lstm", None, True), ("bilstm", None, True), ("transformer", None, False),
    ("transformer", True, True), ("bilstm", False, False),
])
def test_length_bucketing_default(name, setting, expected):
    overrides = [f"model.name={name}"]
    if setting is not None:
        overrides.append(f"train.length_bucketing={str(setting).lower()}")
    config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", overrides)
    assert use_length_bucketing(config) is expected


def test_the_run_reports_measured_padding(tiny_run):
    train = tiny_run.metrics["train"]
    assert train["length_bucketing"] is True and train["preprocessing_in_dataset"] is False
    assert 0.0 <= train["padded_fraction"] <= 0.15
    assert train["padding"]["real_tokens"] > 479 and train["padding"]["batches"] >= 15


@pytest.mark.parametrize("bucket_width", [None, DEFAULT_BUCKET_WIDTH])
def test_length_batches_in_the_first_epoch_order_are_the_training_batches(tweets, bucket_width):
    examples, labels, _, lengths = tweets
    batches = build_dataset(examples, labels, batch_size=64, shuffle=True, seed=7,
                            shuffle_buffer=500, token_lengths=lengths, bucket_width=bucket_width,
                            keep_lengths=True)
    order = first_epoch_order(len(examples), seed=7, shuffle_buffer=500)
    assert sorted(order.tolist()) == list(range(len(examples)))
    counted = length_batches(lengths[order], batch_size=64, bucket_width=bucket_width)
    trained = [batch[-1].numpy() for batch in batches]  # the first epoch
    # The same batches, each with the same lengths in the same order (bucketed, tf.data
    # yields them in another order).
    assert sorted(batch.tolist() for batch in counted) == sorted(b.tolist() for b in trained)
    assert count_padding(counted) == count_padding(trained)
    assert count_padding(counted, 64) == count_padding(trained, 64)
    assert len(trained) >= 32
