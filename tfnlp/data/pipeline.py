"""tf.data input pipelines over in-memory labelled texts."""

from __future__ import annotations

import numpy as np

from tfnlp.backend import tf
from tfnlp.data.records import LabelledTexts


def encode_labels(examples: LabelledTexts, labels: list[str]) -> np.ndarray:
    """Label strings to int32 ids in the order of `labels`."""
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
    """
    tensors = (np.array(examples.texts, dtype=object), encode_labels(examples, labels))
    if use_weights and examples.weights is not None:
        tensors += (np.array(examples.weights, dtype=np.float32),)
    dataset = tf.data.Dataset.from_tensor_slices(tensors).cache()
    if shuffle:
        dataset = dataset.shuffle(
            min(shuffle_buffer, len(examples)), seed=seed, reshuffle_each_iteration=True
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
