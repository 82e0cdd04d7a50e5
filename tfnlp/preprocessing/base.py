"""`NormalizingTokenizer`: the base of the in-graph tokenizer layers.

Like tensorflow-text's small abstract `Tokenizer`, it holds what every tokenizer layer here
shares: the vocabulary (with its reserved tokens first), the tokenizer kind, the normalisation
options and `normalize()`, the vocabulary lookups, and the `get_config` keys for all of them.
A subclass says which reserved tokens and kinds it accepts, how many bytes of input it reads,
and implements `tokenize()` and `call()`.
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow_text as tf_text

from tfnlp.backend import keras, tf
from tfnlp.preprocessing.normalization import Step, apply_steps, normalization_steps
from tfnlp.preprocessing.pretokenization import splitting_steps
from tfnlp.preprocessing.vocabulary import UNK_TOKEN


class NormalizingTokenizer(keras.layers.Layer):
    """Base layer: vocabulary + tokenizer kind + `normalize_text` options.

    Not registered for serialization: it is abstract; the subclasses are.

    Args:
        vocabulary: tokens in id order; must start with the subclass's `reserved_tokens`.
        tokenizer: one of the subclass's `tokenizers`.
        lowercase: Unicode case folding (NFKC_Casefold) instead of plain NFKC.
        replace_urls: URLs become the `xxurl` placeholder.
        replace_mentions: @handles become `xxuser`.
        replace_numbers: standalone numbers become `xxnum`.
        **kwargs: `keras.layers.Layer` arguments (`trainable` defaults to False: no weights).

    Raises:
        ValueError: an unknown `tokenizer`, or a vocabulary without the reserved tokens first.

    Example:
        >>> from tfnlp.preprocessing import TextPreprocessor
        >>> layer = TextPreprocessor(["[PAD]", "[UNK]", "hi"], tokenizer="word")
        >>> layer.normalize(tf.constant(["Hi @Bob, see www.x.io"])).numpy()
        array([b'hi xxuser , see xxurl'], dtype=object)
    """

    # Set by each subclass: the tokens the vocabulary must start with, and the kinds it knows.
    reserved_tokens: ClassVar[list[str]]
    tokenizers: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        vocabulary: list[str],
        tokenizer: str,
        lowercase: bool = True,
        replace_urls: bool = True,
        replace_mentions: bool = True,
        replace_numbers: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if tokenizer not in self.tokenizers:
            raise ValueError(
                f"`tokenizer` must be one of {self.tokenizers}. Received: tokenizer={tokenizer!r}."
            )
        vocabulary = list(vocabulary)
        count = len(self.reserved_tokens)
        if vocabulary[:count] != self.reserved_tokens:
            raise ValueError(
                f"`vocabulary` must start with {self.reserved_tokens}. "
                f"Received: vocabulary[:{count}]={vocabulary[:count]!r}."
            )
        self.vocabulary = vocabulary
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.replace_urls = replace_urls
        self.replace_mentions = replace_mentions
        self.replace_numbers = replace_numbers

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @property
    def max_input_bytes(self) -> int:
        """Inputs are cut to this many bytes before any work (a subclass decides how many)."""
        raise NotImplementedError

    def normalization_steps(self, collapse_whitespace: bool = True) -> list[Step]:
        """`normalize_text`'s passes with this layer's options, in order."""
        return normalization_steps(
            lowercase=self.lowercase,
            replace_urls=self.replace_urls,
            replace_mentions=self.replace_mentions,
            replace_numbers=self.replace_numbers,
            max_bytes=self.max_input_bytes,
            collapse_whitespace=collapse_whitespace,
        )

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """The normalised strings (same shape as `texts`)."""
        return apply_steps(texts, self.normalization_steps())

    def normalized_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """The words `[batch, (words)]` of a 1-D batch, normalised (the splitter skips
        runs of spaces, so the normalisation leaves them)."""
        steps = self.normalization_steps(collapse_whitespace=False) + splitting_steps()
        return apply_steps(texts, steps)

    def wordpiece_ids(self, words: tf.RaggedTensor) -> tf.RaggedTensor:
        """The subclass's FastWordpiece (`_wordpiece`) over words `[batch, (words)]`: int64
        ids `[batch, (pieces)]`."""
        return self._wordpiece.tokenize(words).merge_dims(-2, -1)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged ids `[batch, (tokens)]` of a 1-D batch of strings."""
        raise NotImplementedError

    def _token_table(self) -> tf.lookup.StaticHashTable:
        """Whole-token lookup (words, characters): token -> int64 id, `[UNK]` when absent."""
        vocabulary = list(self.vocabulary)  # a plain list, not Keras' tracked wrapper
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)
            ),
            default_value=self.reserved_tokens.index(UNK_TOKEN),
        )

    def _wordpiece_tokenizer(self, **options) -> tf_text.FastWordpieceTokenizer:
        """FastWordpiece over already pre-tokenized words, int64 ids, `[UNK]` for misses."""
        return tf_text.FastWordpieceTokenizer(
            vocab=list(self.vocabulary),
            token_out_type=tf.int64,
            unknown_token=UNK_TOKEN,
            no_pretokenization=True,
            **options,
        )

    @staticmethod
    def _batch_of_strings(inputs) -> tf.Tensor:
        """`[batch]` strings from `[batch]` or `[batch, 1]` inputs."""
        texts = tf.convert_to_tensor(inputs)
        if texts.shape.rank == 2:
            texts = tf.squeeze(texts, axis=-1)
        return texts

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": list(self.vocabulary),
            "tokenizer": self.tokenizer,
            "lowercase": self.lowercase,
            "replace_urls": self.replace_urls,
            "replace_mentions": self.replace_mentions,
            "replace_numbers": self.replace_numbers,
        }
