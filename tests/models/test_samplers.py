"""Samplers: filtering, greedy = argmax, seeded reproducibility, configs, validation, and the
in-graph (tensor-option) sampler agreeing with the Python-option ones."""

import numpy as np
import pytest

from tfnlp.backend import keras, tf
from tfnlp.models.samplers import (
    MASKED_LOGIT,
    GreedySampler,
    RandomSampler,
    TopKSampler,
    TopPSampler,
    filter_logits,
    sampler_from_options,
)

SAMPLERS = [
    GreedySampler(),
    RandomSampler(temperature=0.7),
    TopKSampler(top_k=5, temperature=1.3),
    TopPSampler(top_p=0.9, temperature=0.8, top_k=7),
]


def _logits(batch=64, vocab=50, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(batch, vocab)), tf.float32)


def test_filter_logits_top_k_and_top_p():
    logits = tf.math.log(tf.constant([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda k, p: (filter_logits(logits, k, p).numpy()[0] > -1e8).tolist()  # noqa: E731
    assert kept(2, 1.0) == [True, True, False, False]
    assert kept(0, 0.7) == [True, True, False, False]
    assert kept(0, 0.9) == [True, True, True, False]
    assert kept(0, 0.1) == [True, False, False, False]
    assert kept(0, 1.0) == [True] * 4 and kept(10, 1.0) == [True] * 4


def test_greedy_is_the_argmax_whatever_the_seed():
    logits = _logits()
    expected = np.argmax(logits.numpy(), axis=-1)
    for seed, step in ((0, 0), (7, 3)):
        ids = GreedySampler()(logits, step, seed)
        assert ids.dtype == tf.int32 and ids.numpy().tolist() == expected.tolist()
    # Temperature 0 is greedy too, from Python options or in-graph ones.
    assert RandomSampler(0.0)(logits, 0, 5).numpy().tolist() == expected.tolist()
    options = sampler_from_options(tf.constant(0.0), tf.constant(3), tf.constant(0.5))
    assert options(logits, 0, 5).numpy().tolist() == expected.tolist()


@pytest.mark.parametrize("sampler", SAMPLERS[1:], ids=lambda s: type(s).__name__)
def test_the_same_seed_and_step_give_the_same_ids(sampler):
    logits = tf.zeros([64, 50])
    first = sampler(logits, 0, 7).numpy()
    assert (first == sampler(logits, 0, 7).numpy()).all()
    assert not (first == sampler(logits, 0, 8).numpy()).all()
    assert not (first == sampler(logits, 1, 7).numpy()).all()


def test_top_k_and_top_p_sample_only_inside_their_set():
    logits = _logits(batch=256, vocab=20)
    top3 = np.argsort(-logits.numpy(), axis=-1)[:, :3]
    ids = TopKSampler(top_k=3, temperature=5.0)(logits, 0, 1).numpy()
    assert all(i in row for i, row in zip(ids, top3))
    peaked = tf.math.log(tf.constant([[0.05, 0.9, 0.05]] * 64))
    assert set(TopPSampler(top_p=0.8, temperature=1.0)(peaked, 0, 1).numpy()) == {1}


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: type(s).__name__)
def test_config_round_trip(sampler):
    clone = type(sampler).from_config(sampler.get_config())
    assert type(clone) is type(sampler) and clone.get_config() == sampler.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sampler))
    assert type(restored) is type(sampler) and restored.get_config() == sampler.get_config()
    logits = _logits()
    assert restored(logits, 2, 9).numpy().tolist() == sampler(logits, 2, 9).numpy().tolist()


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: RandomSampler(temperature=-1.0),
            "`temperature` must be 0 (greedy) or positive. Received: temperature=-1.0.",
        ),
        (
            lambda: TopKSampler(top_k=-1),
            "`top_k` must be 0 (off) or a positive integer. Received: top_k=-1.",
        ),
        (lambda: TopKSampler(top_k=2.5), "Received: top_k=2.5."),
        (
            lambda: TopPSampler(top_p=0.0),
            "`top_p` must be in (0, 1] (1 is off). Received: top_p=0.0.",
        ),
        (lambda: TopPSampler(top_p=1.5), "Received: top_p=1.5."),
        (lambda: TopPSampler(top_p=0.9, top_k=True), "Received: top_k=True."),
        (lambda: sampler_from_options(0.5, 0, 2.0), "Received: top_p=2.0."),
    ],
)
def test_invalid_options_are_refused_with_the_fix(make, message):
    with pytest.raises(ValueError) as raised:
        make()
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "options, kind",
    [
        ((0.0, 10, 0.5), GreedySampler),
        ((1.0, 0, 1.0), RandomSampler),
        ((0.8, 40, 1.0), TopKSampler),
        ((0.8, 0, 0.9), TopPSampler),
        ((0.8, 40, 0.9), TopPSampler),
    ],
)
def test_options_in_graph_pick_the_same_ids_as_the_python_sampler(options, kind):
    """The exported signature's tensor options and the Python options are one sampler."""
    python = sampler_from_options(*options)
    assert type(python) is kind

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([], tf.float32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32),
            tf.TensorSpec([], tf.int64),
        ]
    )
    def in_graph(logits, temperature, top_k, top_p, seed):
        return sampler_from_options(temperature, top_k, top_p)(logits, 3, seed)

    logits = _logits()
    expected = python(logits, 3, tf.constant(11, tf.int64)).numpy().tolist()
    assert in_graph(logits, *options, tf.constant(11, tf.int64)).numpy().tolist() == expected


def test_filtered_logits_use_the_masked_value():
    filtered = filter_logits(tf.constant([[3.0, 2.0, 1.0]]), 1, 1.0).numpy()
    assert filtered.tolist() == [[3.0, MASKED_LOGIT, MASKED_LOGIT]]
