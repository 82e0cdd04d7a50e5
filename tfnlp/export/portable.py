"""Preprocessing from TensorFlow core ops only, for exports any TensorFlow runtime can load.

`export.portable: true` replaces the model's `TextPreprocessor` (which uses tensorflow-text's
normalisation and FastWordpiece ops) in the exported graph with this module:

- normalisation: the same steps and regular expressions, except that Unicode NFKC and case
  folding (tensorflow-text only) become `tf.strings.lower(encoding="utf-8")`. So the two differ
  only on text that NFKC changes (full-width forms, ligatures, superscripts, decomposed
  accents, ...) or where case folding and lower-casing disagree (`ß` → `ss`, final sigma, ...);
- pre-tokenization: identical (kept delimiters are padded with spaces, then split on spaces);
- WordPiece: identical ids. Greedy longest-match-first over a core lookup table in a
  `tf.while_loop`, which is what FastWordpiece computes (words over 100 bytes or with no
  match become `[UNK]`);
- word vocabulary lookup, stop words, truncation and padding: identical (core lookup tables).
"""

from __future__ import annotations

from tfnlp.backend import tf
from tfnlp.preprocessing.layer import _BYTES_PER_TOKEN, TextPreprocessor
from tfnlp.preprocessing.normalization import normalize_text
from tfnlp.preprocessing.pretokenization import split_words
from tfnlp.preprocessing.vocabulary import UNK_TOKEN

SUFFIX_INDICATOR = "##"
# FastWordpieceTokenizer's default: longer words become [UNK].
MAX_BYTES_PER_WORD = 100


class PortablePreprocessor(tf.Module):
    """Raw strings → int32 ids `[batch, length]`, like `TextPreprocessor`, in core ops only.

    Args:
        layer: the trained model's `TextPreprocessor` (its vocabulary and options are copied).

    Example:
        >>> portable = PortablePreprocessor(preprocessor_layer)
        >>> portable(tf.constant(["so good :)"]))  # the same ids the layer gives
    """

    def __init__(self, layer: TextPreprocessor):
        super().__init__(name="portable_preprocessor")
        self.tokenizer = layer.tokenizer
        self.sequence_length = layer.sequence_length
        self.lowercase = layer.lowercase
        self.replace_urls = layer.replace_urls
        self.replace_mentions = layer.replace_mentions
        self.replace_numbers = layer.replace_numbers
        vocabulary = list(layer.vocabulary)
        self.unknown_id = vocabulary.index(UNK_TOKEN)
        # -1 marks "not in the vocabulary" so WordPiece can tell a miss from a match.
        self._vocabulary_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)
            ),
            default_value=-1,
        )
        pieces = [t[len(SUFFIX_INDICATOR):] if t.startswith(SUFFIX_INDICATOR) else t
                  for t in vocabulary]
        # No vocabulary entry is longer: candidate pieces never need to be.
        self.max_piece_chars = max(1, max(len(p) for p in pieces))
        self._stopword_table = None
        if layer.stopwords:
            self._stopword_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(layer.stopwords), tf.ones([len(layer.stopwords)], tf.int64)
                ),
                default_value=0,
            )

    def normalize(self, texts: tf.Tensor, collapse_whitespace: bool = True) -> tf.Tensor:
        """`normalize_text` with lower-casing in place of NFKC / case folding."""
        return normalize_text(
            texts, lowercase=self.lowercase, replace_urls=self.replace_urls,
            replace_mentions=self.replace_mentions, replace_numbers=self.replace_numbers,
            max_bytes=self.sequence_length * _BYTES_PER_TOKEN, unicode_normalization=False,
            collapse_whitespace=collapse_whitespace,
        )

    def split_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """`split_words` (+ stop words), on the core-op normalisation."""
        words = split_words(self.normalize(texts, collapse_whitespace=False))
        if self._stopword_table is not None:
            keep = tf.equal(self._stopword_table.lookup(words), 0)
            words = tf.ragged.boolean_mask(words, keep)
        return words

    def wordpiece(self, words: tf.Tensor) -> tf.RaggedTensor:
        """Greedy longest-match-first WordPiece ids of a 1-D tensor of words `[n, (pieces)]`."""
        unique_words, index = tf.unique(words)
        pieces = self._wordpiece_unique(unique_words)
        return tf.gather(pieces, index)

    def _wordpiece_unique(self, words: tf.Tensor) -> tf.RaggedTensor:
        count = tf.size(words)
        _, starts = tf.strings.unicode_decode_with_offsets(words, "UTF-8")
        num_chars = tf.cast(starts.row_lengths(), tf.int32)
        byte_lengths = tf.strings.length(words)
        # boundaries[i, c] = byte offset of character c of word i (c = num_chars: the end).
        boundaries = tf.concat(
            [starts.to_tensor(default_value=0), tf.zeros([count, 1], tf.int64)], axis=1
        )
        columns = tf.range(tf.shape(boundaries)[1], dtype=tf.int32)
        boundaries = tf.where(columns[None, :] >= num_chars[:, None],
                              tf.cast(byte_lengths[:, None], tf.int64), boundaries)
        boundaries = tf.cast(boundaries, tf.int32)
        widths = tf.range(1, self.max_piece_chars + 1, dtype=tf.int32)  # [K]
        tiled_words = tf.tile(words[:, None], [1, self.max_piece_chars])

        def step(start, done, failed, emitted, i):
            active = ~done & ~failed
            end = start[:, None] + widths[None, :]  # [n, K]
            fits = end <= num_chars[:, None]
            end = tf.minimum(end, num_chars[:, None])
            begin_byte = tf.gather(boundaries, start, batch_dims=1)
            end_byte = tf.gather(boundaries, end, batch_dims=1)
            piece = tf.strings.substr(
                tiled_words, tf.tile(begin_byte[:, None], [1, self.max_piece_chars]),
                end_byte - begin_byte[:, None],
            )
            piece = tf.where((start > 0)[:, None], SUFFIX_INDICATOR + piece, piece)
            ids = self._vocabulary_table.lookup(piece)
            matched = fits & (ids >= 0)
            best = tf.reduce_max(tf.where(matched, widths[None, :], 0), axis=1)  # 0: no match
            best_id = tf.gather(ids, tf.maximum(best - 1, 0), batch_dims=1)
            advance = active & (best > 0)
            failed = failed | (active & (best == 0))
            emitted = emitted.write(i, tf.where(advance, best_id, -1))
            start = start + tf.where(advance, best, 0)
            done = done | (start >= num_chars)
            return start, done, failed, emitted, i + 1

        def keep_going(start, done, failed, emitted, i):
            return tf.reduce_any(~done & ~failed)

        _, _, failed, emitted, _ = tf.while_loop(
            keep_going, step,
            [tf.zeros([count], tf.int32), num_chars == 0,
             byte_lengths > MAX_BYTES_PER_WORD,
             tf.TensorArray(tf.int64, size=0, dynamic_size=True, element_shape=[None]), 0],
        )
        # [n, steps] plus one column of -1 so a batch that needed no step still has a column.
        ids = tf.concat([tf.transpose(emitted.stack()), -tf.ones([count, 1], tf.int64)], axis=1)
        ids = tf.reshape(ids, [count, -1])
        # A word with an unmatched part is one [UNK], as in FastWordpiece.
        unknown_first = tf.concat(
            [tf.fill([count, 1], tf.constant(self.unknown_id, tf.int64)),
             -tf.ones_like(ids[:, 1:])], axis=1)
        ids = tf.where(failed[:, None], unknown_first, ids)
        return tf.ragged.boolean_mask(ids, ids >= 0)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged int64 ids `[batch, (tokens)]`, truncated to `sequence_length`."""
        words = self.split_words(texts)
        if self.tokenizer == "wordpiece":
            pieces = self.wordpiece(words.flat_values)
            ids = words.with_flat_values(pieces).merge_dims(-2, -1)
        else:
            ids = self._vocabulary_table.lookup(words)
            flat = ids.flat_values
            ids = ids.with_flat_values(
                tf.where(flat < 0, tf.constant(self.unknown_id, tf.int64), flat))
        return ids[:, : self.sequence_length]

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        ids = self.tokenize(texts)
        dense = ids.to_tensor(default_value=0, shape=[None, self.sequence_length])
        length = tf.cast(tf.maximum(tf.reduce_max(ids.row_lengths()), 1), tf.int32)
        return tf.cast(dense[:, :length], tf.int32)
