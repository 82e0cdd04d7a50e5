"""`LanguageModelTokenizer`: strings ⇄ character or WordPiece ids for language models, in-graph.

Id 0 pads, id 1 is the unknown token and id 2 (`[EOS]`) ends a text. Training streams are
"text [EOS] text [EOS] …", so a prompt is encoded as "[EOS] prompt": the model then sees the
start of a text exactly as in training.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from tfnlp.backend import keras, tf
from tfnlp.preprocessing.base import NormalizingTokenizer
from tfnlp.preprocessing.vocabulary import PAD_TOKEN, UNK_TOKEN, count_words, learn_vocabulary

EOS_TOKEN = "[EOS]"
LM_RESERVED_TOKENS = [PAD_TOKEN, UNK_TOKEN, EOS_TOKEN]
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2
LM_TOKENIZERS = ("character", "wordpiece")


@keras.saving.register_keras_serializable(package="tfnlp")
class LanguageModelTokenizer(NormalizingTokenizer):
    """Normalise, then split into characters or WordPieces; and back from ids to text.

    The vocabulary checks, normalisation and their config keys are `NormalizingTokenizer`'s.

    Args:
        vocabulary: tokens in id order; must start with `[PAD]`, `[UNK]`, `[EOS]`.
        tokenizer: "character" (one id per Unicode character) or "wordpiece".
        lowercase: Unicode case folding (NFKC_Casefold) instead of plain NFKC.
        replace_urls: URLs become `xxurl`.
        replace_mentions: @handles become `xxuser`.
        replace_numbers: standalone numbers become `xxnum`.
        max_bytes: inputs are cut to this many bytes before any work.

    Example:
        >>> layer = LanguageModelTokenizer.from_texts(["abc", "cab"], vocab_size=50)
        >>> layer.detokenize(layer(tf.constant(["cab"])))
        <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'cab'], dtype=object)>
    """

    reserved_tokens = LM_RESERVED_TOKENS
    tokenizers = LM_TOKENIZERS

    def __init__(
        self,
        vocabulary: list[str],
        tokenizer: str = "character",
        lowercase: bool = True,
        replace_urls: bool = True,
        replace_mentions: bool = True,
        replace_numbers: bool = True,
        max_bytes: int = 65536,
        **kwargs,
    ):
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(
                f"`max_bytes` must be a positive integer. Received: max_bytes={max_bytes!r}."
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
        self.max_bytes = max_bytes
        # What ids turn back into: reserved tokens print as nothing.
        reserved = len(LM_RESERVED_TOKENS)
        self._id_to_text = tf.constant([""] * reserved + list(self.vocabulary)[reserved:])
        if tokenizer == "wordpiece":
            self._wordpiece = self._wordpiece_tokenizer(support_detokenization=True)
        else:
            self._char_table = self._token_table()

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], vocab_size: int = 300, tokenizer: str = "character",
        vocabulary_learner: str = "tensorflow_text", **kwargs
    ) -> LanguageModelTokenizer:
        """Learns the vocabulary from `texts` (the training split) and returns the layer.

        Characters: the `vocab_size - 3` most frequent ones. WordPiece: `vocabulary_learner`
        over the normalised words, as for the classifiers (see `learn_vocabulary`).

        Example:
            >>> list(LanguageModelTokenizer.from_texts(["abba", "Cab"], vocab_size=5).vocabulary)
            ['[PAD]', '[UNK]', '[EOS]', 'a', 'b']
        """
        texts = list(texts)
        probe = cls(LM_RESERVED_TOKENS, tokenizer="character", **kwargs)
        if tokenizer == "character":
            counts: collections.Counter = collections.Counter()
            dataset = tf.data.Dataset.from_tensor_slices(texts or [""]).batch(2048)
            for chars in dataset.map(probe._characters):
                counts.update(chars.flat_values.numpy())
            ranked = [c.decode("utf-8") for c, _ in counts.most_common()]
            ranked = [c for c in ranked if c not in LM_RESERVED_TOKENS]
            vocabulary = LM_RESERVED_TOKENS + ranked[: vocab_size - len(LM_RESERVED_TOKENS)]
        elif tokenizer == "wordpiece":
            words = count_words(texts, probe.normalized_words)
            learned = learn_vocabulary(words, tokenizer="wordpiece", vocab_size=vocab_size - 1,
                                       learner=vocabulary_learner)
            vocabulary = LM_RESERVED_TOKENS + [t for t in learned if t not in LM_RESERVED_TOKENS]
        else:
            raise ValueError(
                f"`tokenizer` must be one of {LM_TOKENIZERS}. Received: tokenizer={tokenizer!r}."
            )
        return cls(vocabulary, tokenizer=tokenizer, **kwargs)

    @property
    def max_input_bytes(self) -> int:
        return self.max_bytes

    def _characters(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return tf.strings.unicode_split(self.normalize(texts), "UTF-8", errors="replace")

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged int32 ids `[batch, (tokens)]` of a 1-D batch of strings (no `[EOS]`).

        Example:
            >>> layer = LanguageModelTokenizer(["[PAD]", "[UNK]", "[EOS]", "a", "b"])
            >>> layer.tokenize(tf.constant(["Ab", "c"])).to_list()
            [[3, 4], [1]]
        """
        if self.tokenizer == "wordpiece":
            ids = self.wordpiece_ids(self.normalized_words(texts))
        else:
            ids = self._char_table.lookup(self._characters(texts))
        return tf.cast(ids, tf.int32)

    def detokenize(self, ids: tf.Tensor) -> tf.Tensor:
        """Strings from `[batch, length]` ids (dense or ragged); reserved ids are dropped.

        Example:
            >>> layer = LanguageModelTokenizer(["[PAD]", "[UNK]", "[EOS]", "a", "b"])
            >>> layer.detokenize(tf.constant([[2, 3, 4, 0], [4, 1, 3, 3]])).numpy().tolist()
            [b'ab', b'baa']
        """
        ids = tf.cast(ids, tf.int64)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        ids = tf.ragged.boolean_mask(ids, ids >= len(LM_RESERVED_TOKENS))
        if self.tokenizer == "wordpiece":
            # A continuation may start mid-word: drop the suffix marker left at the front.
            return tf.strings.regex_replace(self._wordpiece.detokenize(ids), "^##", "")
        return tf.strings.reduce_join(tf.gather(self._id_to_text, ids), axis=-1)

    def call(self, inputs):
        """`[EOS]` + the ids of each string, as ragged int32 `[batch, (tokens)]`."""
        texts = self._batch_of_strings(inputs)
        ids = self.tokenize(texts)
        eos = tf.fill([tf.shape(texts)[0], 1], tf.constant(EOS_ID, tf.int32))
        return tf.concat([eos, ids], axis=1)

    def get_config(self):
        return {**super().get_config(), "max_bytes": self.max_bytes}
