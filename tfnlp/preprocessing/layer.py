"""`TextPreprocessor`: raw strings in, padded token ids out, all inside the Keras graph."""

from __future__ import annotations

from collections.abc import Iterable

from tfnlp.backend import keras, tf
from tfnlp.preprocessing.base import NormalizingTokenizer
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
class TextPreprocessor(NormalizingTokenizer):
    """Normalise → pre-tokenize → (optionally drop stop words) → word/WordPiece ids → pad.

    Takes a batch of raw UTF-8 strings (shape `[batch]` or `[batch, 1]`) and returns int32 ids
    of shape `[batch, length]`, where `length` is the longest row of the batch (at least 1,
    at most `sequence_length`), or `sequence_length` itself with `fixed_length`. Id 0 is
    padding, id 1 the unknown token. Because this layer is part of the model, the exported
    SavedModel takes raw strings and runs this very code.
    The vocabulary checks, normalisation and their config keys are `NormalizingTokenizer`'s.

    Args:
        vocabulary: tokens in id order; must start with `[PAD]`, `[UNK]`.
        tokenizer: "word" (whole-word lookup) or "wordpiece" (tensorflow-text FastWordpiece).
        sequence_length: the maximum number of ids per text; longer texts are truncated.
        lowercase: Unicode case folding (NFKC_Casefold) instead of plain NFKC.
        replace_urls: URLs become the `xxurl` placeholder.
        replace_mentions: @handles become `xxuser`.
        replace_numbers: standalone numbers become `xxnum`.
        stopwords: words removed after pre-tokenization (None or empty keeps all).
        fixed_length: pad every batch to `sequence_length`, a static shape: what unrolled
            LSTMs and XLA (which compiles once per input shape) need, at the cost of the
            padded steps.

    Example:
        >>> layer = TextPreprocessor(["[PAD]", "[UNK]", "good", "day"], tokenizer="word")
        >>> layer(tf.constant(["A good DAY!", "day"]))
        <tf.Tensor: shape=(2, 4), dtype=int32, numpy=
        array([[1, 2, 3, 1],
               [3, 0, 0, 0]], dtype=int32)>
    """

    reserved_tokens = RESERVED_TOKENS
    tokenizers = TOKENIZERS

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
        fixed_length: bool = False,
        **kwargs,
    ):
        if not isinstance(sequence_length, int) or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be a positive integer. "
                f"Received: sequence_length={sequence_length!r}."
            )
        super().__init__(
            vocabulary,
            tokenizer,
            lowercase=lowercase,
            replace_urls=replace_urls,
            replace_mentions=replace_mentions,
            replace_numbers=replace_numbers,
            **kwargs,
        )
        self.sequence_length = sequence_length
        self.fixed_length = fixed_length
        self.stopwords = sorted(set(stopwords)) if stopwords else None
        if tokenizer == "wordpiece":
            self._wordpiece = self._wordpiece_tokenizer()
        else:
            self._word_table = self._token_table()
        if self.stopwords:
            self._stopword_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(self.stopwords), tf.ones([len(self.stopwords)], tf.int64)
                ),
                default_value=0,
            )

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], vocab_size: int = 8000, tokenizer: str = "wordpiece",
        vocabulary_learner: str = "huggingface", **kwargs
    ) -> TextPreprocessor:
        """Learns the vocabulary from `texts` (the training split) and returns the layer.

        `vocabulary_learner` picks the WordPiece trainer (see `learn_vocabulary`).

        Example:
            >>> texts = ["good day", "bad day", "good night"]
            >>> list(TextPreprocessor.from_texts(texts * 2, tokenizer="word").vocabulary)
            ['[PAD]', '[UNK]', 'good', 'day', 'bad', 'night']
        """
        counter = cls([PAD_TOKEN, UNK_TOKEN], tokenizer="word", **kwargs)
        counts = count_words(texts, counter.split_words)
        vocabulary = learn_vocabulary(counts, tokenizer=tokenizer, vocab_size=vocab_size,
                                      learner=vocabulary_learner)
        return cls(vocabulary, tokenizer=tokenizer, **kwargs)

    @property
    def static_length(self) -> int | None:
        """The output's number of columns when it is fixed (`fixed_length`), else None."""
        return self.sequence_length if self.fixed_length else None

    @property
    def max_input_bytes(self) -> int:
        return self.sequence_length * _BYTES_PER_TOKEN

    def split_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Normalised words of a 1-D batch, stop words removed when configured.

        Example:
            >>> layer = TextPreprocessor(["[PAD]", "[UNK]"], tokenizer="word", stopwords=["the"])
            >>> layer.split_words(tf.constant(["The car, :)"])).to_list()
            [[b'car', b',', b':)']]
        """
        words = self.normalized_words(texts)
        if self.stopwords:
            keep = tf.equal(self._stopword_table.lookup(words), 0)
            words = tf.ragged.boolean_mask(words, keep)
        return words

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged int64 ids [batch, (tokens)], truncated to `sequence_length`.

        Example:
            >>> layer = TextPreprocessor(["[PAD]", "[UNK]", "car", "##s"], sequence_length=2)
            >>> layer.tokenize(tf.constant(["cars", "car car car"])).to_list()
            [[2, 3], [2, 2]]
        """
        words = self.split_words(texts)
        if self.tokenizer == "wordpiece":
            ids = self.wordpiece_ids(words)
        else:
            ids = self._word_table.lookup(words)
        return ids[:, : self.sequence_length]

    def call(self, inputs):
        ids = self.tokenize(self._batch_of_strings(inputs))
        dense = ids.to_tensor(default_value=0, shape=[None, self.sequence_length])
        if self.fixed_length:
            return tf.cast(dense, tf.int32)
        # Pad only to the batch's longest row (at least 1 step): LSTMs then do no wasted steps.
        # (reduce_max of an empty batch is the int64 minimum, so the floor of 1 covers it too.)
        length = tf.cast(tf.maximum(tf.reduce_max(ids.row_lengths()), 1), tf.int32)
        return tf.cast(dense[:, :length], tf.int32)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.static_length])

    def get_config(self):
        config = {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "stopwords": self.stopwords,
        }
        if self.fixed_length:  # only when set: configs saved before the option stay the same
            config["fixed_length"] = True
        return config
