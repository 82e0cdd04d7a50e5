"""Token streams and next-token training windows, built with tf.data.

The classic recipe materialises every window as one-hot X/Y arrays (windows x length x vocab
floats). Here the corpus is one int32 stream of ids and a window is just a start offset:
`tf.data` shuffles the offsets and gathers `[batch, length + 1]` ids per batch on the fly.
"""

from __future__ import annotations

import numpy as np

from tfnlp.backend import tf
from tfnlp.data.records import DataError
from tfnlp.preprocessing.lm_tokenizer import EOS_ID


def token_stream(texts: list[str], tokenizer, batch_size: int = 1024) -> np.ndarray:
    """"[EOS] text [EOS] text … [EOS]" as one int32 array, tokenized in-graph by `tokenizer`.

    Args:
        texts: the texts, in order.
        tokenizer: a `LanguageModelTokenizer` (its call prepends `[EOS]` to each text).
        batch_size: texts tokenized per tf.data batch.

    Example:
        >>> from tfnlp.preprocessing import LanguageModelTokenizer
        >>> tokenizer = LanguageModelTokenizer(["[PAD]", "[UNK]", "[EOS]", "a", "b"])
        >>> token_stream(["ab", "b"], tokenizer).tolist()
        [2, 3, 4, 2, 4, 2]
    """
    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size)
    dataset = dataset.map(lambda t: tokenizer(t).flat_values,
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    parts = [ids.numpy() for ids in dataset] + [np.array([EOS_ID], np.int32)]
    return np.concatenate(parts).astype(np.int32)


def count_windows(stream_length: int, sequence_length: int, stride: int) -> int:
    """How many `sequence_length + 1` windows, `stride` apart, fit in the stream.

    Example:
        >>> count_windows(20, sequence_length=4, stride=3), count_windows(4, 4, 1)
        (6, 0)
    """
    return max(0, (stream_length - sequence_length - 1) // stride + 1)


def build_windows(
    stream: np.ndarray,
    *,
    sequence_length: int,
    stride: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 42,
) -> tf.data.Dataset:
    """Batches of (inputs, targets), each int32 `[batch, sequence_length]`, targets shifted by 1.

    Args:
        stream: the token ids (`token_stream`).
        sequence_length: tokens per window.
        stride: tokens between window starts (equal to `sequence_length`: no overlap).
        batch_size: windows per batch (the last batch may be smaller).
        shuffle: reshuffle the window order every epoch (training).
        seed: the shuffle seed.

    Raises:
        DataError: the stream is shorter than one window.

    Example:
        >>> stream = np.arange(10, dtype=np.int32)
        >>> windows = build_windows(stream, sequence_length=4, stride=4, batch_size=2)
        >>> inputs, targets = next(iter(windows))
        >>> inputs.numpy().tolist(), targets.numpy().tolist()
        ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
    """
    count = count_windows(len(stream), sequence_length, stride)
    if count == 0:
        raise DataError(
            f"The token stream ({len(stream)} tokens) is shorter than one window of "
            f"`language_model.sequence_length` + 1 = {sequence_length + 1}; use more data or a "
            "shorter sequence_length."
        )
    ids = tf.constant(stream, tf.int32)
    offsets = tf.range(sequence_length + 1, dtype=tf.int64)

    def gather_windows(starts):
        window = tf.gather(ids, starts[:, None] * stride + offsets[None])
        return window[:, :-1], window[:, 1:]

    dataset = tf.data.Dataset.range(count)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(gather_windows, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
