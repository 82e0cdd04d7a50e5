"""tf.data input pipelines over in-memory labelled texts."""

from __future__ import annotations

import numpy as np

from tfnlp.backend import tf
from tfnlp.data.bucketing import boundaries_for, bucket_by_length
from tfnlp.data.records import LabelledTexts


def encode_labels(examples: LabelledTexts, labels: list[str]) -> np.ndarray:
    """Label strings to int32 ids in the order of `labels`.

    Example:
        >>> examples = LabelledTexts(["a", "b", "c"], ["pos", "neg", "pos"])
        >>> encode_labels(examples, ["neg", "pos"])
        array([1, 0, 1], dtype=int32)
    """
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[label] for label in examples.labels], dtype=np.int32)


def build_dataset(
    examples: LabelledTexts,
    labels: list[str],
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 42,
    shuffle_buffer: int = 50_000,
    use_weights: bool = True,
    token_lengths: np.ndarray | None = None,
    bucket_width: int | None = None,
    keep_lengths: bool = False,
) -> tf.data.Dataset:
    """A batched dataset of (raw strings, label ids[, weights]).

    The text stays raw: the model's `TextPreprocessor` layer tokenizes in the graph, so training
    and serving run the same code.

    Args:
        examples: the texts, labels and optional weights.
        labels: label names in id order.
        batch_size: the global batch size.
        shuffle: reshuffle every epoch with a seeded buffer (training data).
        seed: the shuffle seed.
        shuffle_buffer: the shuffle buffer size (the whole split when it is smaller).
        use_weights: yield per-example weights when the examples carry them.
        token_lengths: each example's token count (see `tfnlp.data.bucketing.token_lengths`);
            needed for bucketing and for `keep_lengths`.
        bucket_width: batch examples in length buckets this many tokens wide (None: plain
            batches in shuffled order).
        keep_lengths: yield the token lengths as the last component (to measure padding).

    Raises:
        ValueError: bucketing or `keep_lengths` without `token_lengths`.

    Example:
        >>> examples = LabelledTexts(["good", "bad", "fine"], ["pos", "neg", "pos"])
        >>> texts, ids = next(iter(build_dataset(examples, ["neg", "pos"], batch_size=2)))
        >>> texts.numpy().tolist(), ids.numpy().tolist()
        ([b'good', b'bad'], [1, 0])
    """
    tensors = (np.array(examples.texts, dtype=object), encode_labels(examples, labels))
    if use_weights and examples.weights is not None:
        tensors += (np.array(examples.weights, dtype=np.float32),)
    if token_lengths is not None:
        tensors += (np.asarray(token_lengths, dtype=np.int32),)
    elif bucket_width or keep_lengths:
        raise ValueError("`token_lengths` must be given for length bucketing or `keep_lengths`.")
    dataset = tf.data.Dataset.from_tensor_slices(tensors).cache()
    if shuffle:
        dataset = _shuffled(dataset, len(examples), seed, shuffle_buffer)
    if bucket_width:
        boundaries = boundaries_for(token_lengths, bucket_width)
        dataset = bucket_by_length(dataset, batch_size=batch_size, boundaries=boundaries)
        if shuffle:
            # Every bucket flushes its partial batch at the end of the input. Shuffled within
            # a window of 64 batches, that flush was still a burst of small same-length
            # batches just before each validation (epoch-1 validation accuracy 0.545 unmixed,
            # 0.739 in the window). A buffer holding the whole epoch (every full batch and one
            # partial per bucket) shuffles the batch order uniformly instead.
            epoch_batches = -(-len(examples) // batch_size) + len(boundaries) + 1
            dataset = dataset.shuffle(epoch_batches, seed=seed, reshuffle_each_iteration=True)
    else:
        dataset = dataset.batch(batch_size)
    if token_lengths is not None and not keep_lengths:
        dataset = dataset.map(lambda *element: element[:-1], num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def first_epoch_order(size: int, *, seed: int = 42, shuffle_buffer: int = 50_000) -> np.ndarray:
    """The order in which `build_dataset(shuffle=True)` of `size` examples reads them in its
    first epoch, as indices (tf.data's shuffle depends on the seed and the element count,
    never on the elements).

    Example:
        >>> sorted(first_epoch_order(5, seed=1).tolist())
        [0, 1, 2, 3, 4]
    """
    if size == 0:
        return np.zeros([0], np.int64)
    indices = _shuffled(tf.data.Dataset.range(size), size, seed, shuffle_buffer)
    return next(iter(indices.batch(size))).numpy()


def _shuffled(dataset: tf.data.Dataset, size: int, seed: int, shuffle_buffer: int):
    return dataset.shuffle(min(shuffle_buffer, size), seed=seed, reshuffle_each_iteration=True)
