"""Length bucketing: batch texts of similar token length so each batch pads little.

The model's `TextPreprocessor` pads every batch to its longest row, so a batch of 3- and
40-token tweets costs an LSTM 40 steps for each. Grouping texts by their (precomputed) token
length keeps the longest row close to the others, and `measure_padding` counts, batch by batch,
how many of the padded positions are real tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tfnlp.backend import tf

# Buckets this many tokens wide: tweets average ~20 WordPiece tokens, so a row pads ~1.5
# tokens in its bucket (< 10 %), and 16 buckets of a 64-token limit still fill up quickly.
DEFAULT_BUCKET_WIDTH = 4


def token_lengths(
    tokenize: Callable[[tf.Tensor], tf.RaggedTensor], texts: Sequence[str], batch_size: int = 2048
) -> np.ndarray:
    """The number of token ids each text gets, as the model will see it.

    Args:
        tokenize: a batch of strings → ragged ids, e.g. `TextPreprocessor.tokenize` (which
            truncates to its `sequence_length`, as the model does).
        texts: the raw texts.
        batch_size: texts tokenized per call.

    Returns:
        int32 lengths, one per text.

    Example:
        >>> from tfnlp.preprocessing import TextPreprocessor
        >>> layer = TextPreprocessor(["[PAD]", "[UNK]", "good"], "word", sequence_length=4)
        >>> token_lengths(layer.tokenize, ["good", "so so good", "a b c d e f"]).tolist()
        [1, 3, 4]
    """
    texts = list(texts)
    lengths = [
        tokenize(tf.constant(texts[start : start + batch_size], dtype=tf.string))
        .row_lengths()
        .numpy()
        for start in range(0, len(texts), batch_size)
    ]
    return np.concatenate(lengths).astype(np.int32) if lengths else np.zeros([0], np.int32)


def bucket_boundaries(max_length: int, width: int = DEFAULT_BUCKET_WIDTH) -> list[int]:
    """Bucket upper bounds (exclusive) for lengths 0..max_length: width, 2·width, …

    Raises:
        ValueError: `width` or `max_length` is not a positive integer.

    Example:
        >>> bucket_boundaries(12, width=4), bucket_boundaries(3, width=4)
        ([5, 9], [4])
    """
    for key, value in (("width", width), ("max_length", max_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}.")
    # +1: a length equal to max_length must fall in a bucket of its own range.
    return list(range(width + 1, max_length + 1, width)) or [max_length + 1]


def bucket_by_length(
    dataset: tf.data.Dataset, *, batch_size: int, boundaries: Sequence[int]
) -> tf.data.Dataset:
    """Batches a dataset whose elements end with a scalar int32 token length, by length.

    Every bucket makes batches of `batch_size` (its last one may be smaller); the strings
    themselves are not padded here, the model pads each batch to its longest row.

    Example:
        >>> dataset = tf.data.Dataset.from_tensor_slices((["a", "b c", "d", "e f"], [1, 2, 1, 2]))
        >>> batches = bucket_by_length(dataset, batch_size=2, boundaries=[2])
        >>> [lengths.numpy().tolist() for _, lengths in batches]
        [[1, 1], [2, 2]]
    """
    return dataset.bucket_by_sequence_length(
        element_length_func=lambda *element: element[-1],
        bucket_boundaries=list(boundaries),
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        no_padding=True,
    )


@dataclass(frozen=True)
class PaddingReport:
    """Token positions of one epoch: real ones, padding, and the padded fraction.

    Attributes:
        batches: batches counted (empty ones are not).
        real_tokens: positions holding a token.
        padded_tokens: positions holding padding.
    """

    batches: int
    real_tokens: int
    padded_tokens: int

    @property
    def padded_fraction(self) -> float:
        total = self.real_tokens + self.padded_tokens
        return self.padded_tokens / total if total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "padded_fraction": self.padded_fraction}


def measure_padding(dataset: tf.data.Dataset, fixed_length: int | None = None) -> PaddingReport:
    """Iterates one epoch of batches whose last component is the token lengths and counts.

    Each batch is padded to its longest row (at least 1 step), or to `fixed_length` when
    given, as `TextPreprocessor` does, so the count is what the model computes on, not an
    estimate.

    Example:
        >>> batches = tf.data.Dataset.from_tensor_slices((["a", "b c d"], [1, 3])).batch(2)
        >>> report = measure_padding(batches)
        >>> report, round(report.padded_fraction, 3)
        (PaddingReport(batches=1, real_tokens=4, padded_tokens=2), 0.333)
    """
    batches = real = padded = 0
    for element in dataset:
        lengths = element[-1].numpy().astype(np.int64)
        if lengths.size == 0:
            continue
        steps = fixed_length or max(int(lengths.max()), 1)
        batches += 1
        real += int(lengths.sum())
        padded += steps * lengths.size - int(lengths.sum())
    return PaddingReport(batches, real, padded)
