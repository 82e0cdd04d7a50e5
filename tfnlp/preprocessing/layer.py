"""`TextPreprocessor`: raw strings in, padded token ids out, all inside the Keras graph."""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow_text as tf_text

from tfnlp.backend import keras, tf
from tfnlp.preprocessing.normalization import normalize_text
from tfnlp.preprocessing.pretokenization import split_words
from tfnlp.preprocessing.vocabulary import (
    PAD_TOKEN,
    RESERVED_TOKENS,
    UNK_TOKEN,
    count_words,
    learn_vocabulary,
)

TOKENIZERS = ("word", "wordpiece")
# Inputs are cut to this many bytes per output token before any work: a 1 MB request then
# costs what a tweet does, and no token that could still fit is lost in practice.
_BYTES_PER_TOKEN = 64


@keras.saving.register_keras_serializable(package="tfnlp")
class TextPreprocessor(keras.layers.Layer):
    """Normalise → pre-tokenize → (optionally drop stop words) → word/WordPiece ids → pad.

    Takes a batch of raw UTF-8 strings (shape `[batch]` or `[batch, 1]`) and returns int32 ids
    of shape `[batch, length]`, where `length` is the longest row of the batch (at least 1,
    at most `sequence_length`). Id 0 is padding, id 1 the unknown token. Because this layer is
    part of the model, the exported SavedModel takes raw strings and runs this very code.

    Args:
        vocabulary: tokens in id order; must start with `[PAD]`, `[UNK]`.
        tokenizer: "word" (whole-word lookup) or "wordpiece" (tensorflow-text FastWordpiece).
        sequence_length: the maximum number of ids per text; longer texts are truncated.
        lowercase: Unicode case folding (NFKC_Casefold) instead of plain NFKC.
        replace_urls: URLs become the `xxurl` placeholder.
        replace_mentions: @handles become `xxuser`.
        replace_numbers: standalone numbers become `xxnum`.
        stopwords: words removed after pre-tokenization (None or empty keeps all).

    Example:
        >>> layer = TextPreprocessor.from_texts(["good day", "bad day"], vocab_size=50)
        >>> layer(tf.constant(["a good day"])).shape
        TensorShape([1, 3])
    """

    def __init__(
        self,
        vocabulary: list[str],
        tokenizer: str = "wordpiece",
        sequence_length: int = 64,
        lowercase: bool = True,
        replace_urls: bool = True,
        replace_mentions: bool = True,
        replace_numbers: bool = True,
        stopwords: list[str] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if tokenizer not in TOKENIZERS:
            raise ValueError(
                f"`tokenizer` must be one of {TOKENIZERS}. Received: tokenizer={tokenizer!r}."
            )
        if not isinstance(sequence_length, int) or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be a positive integer. "
                f"Received: sequence_length={sequence_length!r}."
            )
        vocabulary = list(vocabulary)
        if vocabulary[:2] != RESERVED_TOKENS:
            raise ValueError(
                f"`vocabulary` must start with {RESERVED_TOKENS}. "
                f"Received: vocabulary[:2]={vocabulary[:2]!r}."
            )
        self.vocabulary = vocabulary
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.lowercase = lowercase
        self.replace_urls = replace_urls
        self.replace_mentions = replace_mentions
        self.replace_numbers = replace_numbers
        self.stopwords = sorted(set(stopwords)) if stopwords else None

        if tokenizer == "wordpiece":
            self._wordpiece = tf_text.FastWordpieceTokenizer(
                vocab=vocabulary, token_out_type=tf.int64, unknown_token=UNK_TOKEN,
                no_pretokenization=True,
            )
        else:
            self._word_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)
                ),
                default_value=RESERVED_TOKENS.index(UNK_TOKEN),
            )
        if self.stopwords:
            self._stopword_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(self.stopwords), tf.ones([len(self.stopwords)], tf.int64)
                ),
                default_value=0,
            )

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], vocab_size: int = 8000, tokenizer: str = "wordpiece", **kwargs
    ) -> TextPreprocessor:
        """Learns the vocabulary from `texts` (the training split) and returns the layer."""
        counter = cls([PAD_TOKEN, UNK_TOKEN], tokenizer="word", **kwargs)
        counts = count_words(texts, counter.split_words)
        vocabulary = learn_vocabulary(counts, tokenizer=tokenizer, vocab_size=vocab_size)
        return cls(vocabulary, tokenizer=tokenizer, **kwargs)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """The normalised strings (same shape as `texts`)."""
        return normalize_text(
            texts,
            lowercase=self.lowercase,
            replace_urls=self.replace_urls,
            replace_mentions=self.replace_mentions,
            replace_numbers=self.replace_numbers,
            max_bytes=self.sequence_length * _BYTES_PER_TOKEN,
        )

    def split_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Normalised words of a 1-D batch, stop words removed when configured."""
        words = split_words(self.normalize(texts))
        if self.stopwords:
            keep = tf.equal(self._stopword_table.lookup(words), 0)
            words = tf.ragged.boolean_mask(words, keep)
        return words

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged int64 ids [batch, (tokens)], truncated to `sequence_length`."""
        words = self.split_words(texts)
        if self.tokenizer == "wordpiece":
            ids = self._wordpiece.tokenize(words).merge_dims(-2, -1)
        else:
            ids = self._word_table.lookup(words)
        return ids[:, : self.sequence_length]

    def call(self, inputs):
        texts = tf.convert_to_tensor(inputs)
        if texts.shape.rank == 2:
            texts = tf.squeeze(texts, axis=-1)
        ids = self.tokenize(texts)
        dense = ids.to_tensor(default_value=0, shape=[None, self.sequence_length])
        # Pad only to the batch's longest row (at least 1 step): LSTMs then do no wasted steps.
        # (reduce_max of an empty batch is the int64 minimum, so the floor of 1 covers it too.)
        length = tf.cast(tf.maximum(tf.reduce_max(ids.row_lengths()), 1), tf.int32)
        return tf.cast(dense[:, :length], tf.int32)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], None])

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "tokenizer": self.tokenizer,
            "sequence_length": self.sequence_length,
            "lowercase": self.lowercase,
            "replace_urls": self.replace_urls,
            "replace_mentions": self.replace_mentions,
            "replace_numbers": self.replace_numbers,
            "stopwords": self.stopwords,
        }
