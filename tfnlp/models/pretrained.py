"""A vocabulary's embedding matrix from pretrained word vectors, and how much of it they cover.

Whole-word tokens (and WordPiece tokens that are whole words, i.e. not `##` continuation
pieces) take their word's vector, or their lowercased form's: GloVe is lowercase. `##` pieces,
the reserved tokens and words the vectors lack start random, seeded, at the scale of the
vectors found, so that training sees one distribution of embedding norms.

`PretrainedEmbeddings` is that matrix as a Keras initializer of the classifiers' `Embedding`:
the vectors are only the starting values, and the trained weights live in the checkpoints and
the SavedModel, which therefore never need the vectors (nor their package) to load or serve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.models.word_vectors import read_word_vectors
from tfnlp.preprocessing.vocabulary import RESERVED_TOKENS

CONTINUATION_PREFIX = "##"
# The random rows' standard deviation when no token has a vector (Keras' uniform init's scale).
_FALLBACK_SCALE = 0.05


def candidate_words(token: str, continuation_prefix: str | None = CONTINUATION_PREFIX) -> list[str]:
    """The words whose vector `token` may take, in order of preference (none: random).

    Example:
        >>> candidate_words("Good"), candidate_words("##ing"), candidate_words("[UNK]")
        (['Good', 'good'], [], [])
    """
    if token in RESERVED_TOKENS or (continuation_prefix and token.startswith(continuation_prefix)):
        return []
    return list(dict.fromkeys([token, token.lower()]))


@dataclass(frozen=True)
class EmbeddingTable:
    """A vocabulary's embedding matrix and which of its rows came from the vectors.

    Attributes:
        source: where the vectors came from (a path or a built-in name).
        matrix: float32 `(vocabulary size, dimension)`.
        found: bool `(vocabulary size,)`: the row is a pretrained vector.
        lowercased: tokens found only in their lowercased form.
    """

    source: str
    matrix: np.ndarray
    found: np.ndarray
    lowercased: int

    @property
    def dimension(self) -> int:
        return self.matrix.shape[1]

    def coverage(self) -> dict:
        """The vocabulary's coverage, for logs and metrics.json."""
        size = len(self.found)
        return {"source": self.source, "dimension": self.dimension, "vocabulary_size": size,
                "tokens_with_vector": int(self.found.sum()), "lowercase_matches": self.lowercased,
                "vocabulary_coverage": float(self.found.mean()) if size else 0.0}


def embedding_table(vocabulary: Sequence[str], source: str, *, seed: int = 0,
                    continuation_prefix: str | None = CONTINUATION_PREFIX) -> EmbeddingTable:
    """Maps each vocabulary token to its pretrained vector, or to a seeded random row.

    Args:
        vocabulary: tokens in id order (reserved tokens first).
        source: a word2vec/GloVe text file (any `tf.io.gfile` path) or a built-in name
            ("glove-6b-50d").
        seed: seeds the random rows.
        continuation_prefix: the WordPiece continuation marker; None for word vocabularies
            (every token is then a whole word).

    Returns:
        The matrix, which rows are pretrained, and how many matched only lowercased.

    Example:
        >>> import pathlib, tempfile
        >>> path = tempfile.mkstemp(suffix=".txt")[1]
        >>> _ = pathlib.Path(path).write_text("good 1 1\\nday 2 2\\n")
        >>> table = embedding_table(["[PAD]", "[UNK]", "Good", "##s", "night"], path)
        >>> table.found.tolist(), table.matrix[2].tolist(), table.lowercased
        ([False, False, True, False, False], [1.0, 1.0], 1)
    """
    candidates = [candidate_words(token, continuation_prefix) for token in vocabulary]
    vectors = read_word_vectors(source, {word for words in candidates for word in words})
    matrix_rows = [next((vectors.vectors[w] for w in words if w in vectors.vectors), None)
                   for words in candidates]
    found = np.array([row is not None for row in matrix_rows], dtype=bool)
    lowercased = sum(1 for token, hit in zip(vocabulary, found)
                     if hit and token not in vectors.vectors)
    pretrained = [row for row in matrix_rows if row is not None]
    scale = float(np.std(pretrained)) if pretrained else _FALLBACK_SCALE
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale, (len(vocabulary), vectors.dimension)).astype(np.float32)
    if pretrained:
        matrix[found] = np.stack(pretrained)
    return EmbeddingTable(source, matrix, found, lowercased)


def occurrence_coverage(table: EmbeddingTable, tokenize: Callable[[tf.Tensor], tf.RaggedTensor],
                        texts: Sequence[str], batch_size: int = 2048) -> dict:
    """The share of the token occurrences in `texts` whose ids have a pretrained vector.

    Args:
        table: the vocabulary's `EmbeddingTable`.
        tokenize: strings -> ragged ids, e.g. `TextPreprocessor.tokenize` (truncated as the
            model sees them).
        texts: the training texts.
        batch_size: texts tokenized per call.

    Example:
        >>> table = EmbeddingTable("v.txt", np.zeros([3, 2], np.float32),
        ...                        np.array([False, False, True]), 0)
        >>> occurrence_coverage(table, lambda t: tf.ragged.constant([[2, 1], [2]]), ["a b", "a"])
        {'training_texts': 2, 'training_tokens': 3, 'training_tokens_covered': 2, 'occurrence_coverage': 0.6666666666666666}
    """  # noqa: E501  (a doctest's output is one line)
    counts = np.zeros(len(table.found), dtype=np.int64)
    for start in range(0, len(texts), batch_size):
        ids = tokenize(tf.constant(list(texts[start:start + batch_size]), dtype=tf.string))
        counts += np.bincount(ids.flat_values.numpy(), minlength=len(counts))
    total, covered = int(counts.sum()), int(counts[table.found].sum())
    return {"training_texts": len(texts), "training_tokens": total,
            "training_tokens_covered": covered,
            "occurrence_coverage": covered / total if total else 0.0}


def coverage_report(table: EmbeddingTable, tokenize: Callable[[tf.Tensor], tf.RaggedTensor],
                    texts: Sequence[str]) -> dict:
    """`table.coverage()` and `occurrence_coverage` in one dict (metrics.json's entry)."""
    return {**table.coverage(), **occurrence_coverage(table, tokenize, texts)}


def describe_coverage(report: dict) -> str:
    """One log line of a `coverage_report`.

    Example:
        >>> describe_coverage({"source": "glove-6b-50d", "dimension": 50, "vocabulary_size": 8,
        ...     "tokens_with_vector": 6, "lowercase_matches": 1, "vocabulary_coverage": 0.75,
        ...     "training_tokens": 40, "occurrence_coverage": 0.9})
        'glove-6b-50d (50-d): 6 of 8 vocabulary tokens have a vector (75.0%, 1 by their lowercase form), covering 90.0% of 40 training-token occurrences'
    """  # noqa: E501  (a doctest's output is one line)
    return (f"{report['source']} ({report['dimension']}-d): {report['tokens_with_vector']:,} of "
            f"{report['vocabulary_size']:,} vocabulary tokens have a vector "
            f"({100 * report['vocabulary_coverage']:.1f}%, {report['lowercase_matches']:,} by "
            f"their lowercase form), covering {100 * report['occurrence_coverage']:.1f}% of "
            f"{report['training_tokens']:,} training-token occurrences")


@keras.saving.register_keras_serializable(package="tfnlp")
class PretrainedEmbeddings(keras.initializers.Initializer):
    """Initializes an `Embedding` with `embedding_table(vocabulary, source, ...)`'s matrix.

    The config names the source and vocabulary, not the matrix (a model config stays small
    in TensorBoard's graph); the table is read once, on first use, and kept in `table`.

    Args:
        source: a word2vec/GloVe text file or a built-in name ("glove-6b-50d").
        vocabulary: the preprocessing layer's tokens in id order.
        seed: seeds the rows of tokens without a vector.
        continuation_prefix: "##" for WordPiece vocabularies, None for word vocabularies.

    Raises:
        ValueError: (when called) a shape other than `(len(vocabulary), the vectors'
            dimension)`.

    Example:
        >>> import pathlib, tempfile
        >>> path = tempfile.mkstemp(suffix=".txt")[1]
        >>> _ = pathlib.Path(path).write_text("1 2\\ngood 0.5 -0.5\\n")
        >>> embedding = keras.layers.Embedding(
        ...     3, 2, embeddings_initializer=PretrainedEmbeddings(path, ["[PAD]", "[UNK]", "good"]))
        >>> embedding(tf.constant([2])).numpy().tolist()
        [[0.5, -0.5]]
    """

    def __init__(self, source: str, vocabulary: Sequence[str], seed: int = 0,
                 continuation_prefix: str | None = CONTINUATION_PREFIX):
        self.source = source
        self.vocabulary = list(vocabulary)
        self.seed = seed
        self.continuation_prefix = continuation_prefix
        self._table: EmbeddingTable | None = None

    @property
    def table(self) -> EmbeddingTable:
        if self._table is None:
            self._table = embedding_table(self.vocabulary, self.source, seed=self.seed,
                                          continuation_prefix=self.continuation_prefix)
        return self._table

    def __call__(self, shape, dtype=None, **kwargs):
        matrix = self.table.matrix
        if tuple(shape) != matrix.shape:
            raise ValueError(
                f"`shape` must be {matrix.shape}: (vocabulary size, the dimension of the vectors "
                f"in {self.source!r}). Received: shape={tuple(shape)!r}. Give the embedding "
                f"`embedding_dim={matrix.shape[1]}`."
            )
        return tf.constant(matrix, dtype=dtype or tf.float32)

    def get_config(self):
        return {"source": self.source, "vocabulary": self.vocabulary, "seed": self.seed,
                "continuation_prefix": self.continuation_prefix}
