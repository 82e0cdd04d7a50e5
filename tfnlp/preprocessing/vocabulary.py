"""Learning a word or WordPiece vocabulary from training texts."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

from tfnlp.backend import tf

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
# Id 0 pads, id 1 is the unknown token: the same in every vocabulary.
RESERVED_TOKENS = [PAD_TOKEN, UNK_TOKEN]


def count_words(
    texts: Iterable[str], split: Callable[[tf.Tensor], tf.RaggedTensor], batch_size: int = 2048
) -> collections.Counter:
    """Counts the words `split` (normalise + pre-tokenize, in TF) produces over `texts`.

    Example:
        >>> count_words(["good good day", "day"], tf.strings.split)
        Counter({'good': 2, 'day': 2})
    """
    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size)
    dataset = dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE)
    counts: collections.Counter = collections.Counter()
    for words in dataset:
        counts.update(words.flat_values.numpy())
    return collections.Counter({w.decode("utf-8"): c for w, c in counts.items()})


def learn_vocabulary(
    word_counts: collections.Counter, *, tokenizer: str, vocab_size: int, min_count: int = 2
) -> list[str]:
    """Learns the vocabulary: reserved tokens first, then words or WordPieces.

    Args:
        word_counts: word frequencies from the training split.
        tokenizer: "word" (most frequent words) or "wordpiece" (tensorflow-text's learner).
        vocab_size: the maximum size, reserved tokens included.
        min_count: word-level only: rarer words map to `[UNK]`.

    Returns:
        The tokens in id order.

    Raises:
        ValueError: an unknown `tokenizer`.

    Example:
        >>> counts = collections.Counter({"car": 10, "cars": 5, "carpet": 3, "rare": 1})
        >>> learn_vocabulary(counts, tokenizer="word", vocab_size=4)
        ['[PAD]', '[UNK]', 'car', 'cars']
    """
    if tokenizer == "word":
        common = [
            w for w, c in word_counts.most_common() if c >= min_count and w not in RESERVED_TOKENS
        ]
        return RESERVED_TOKENS + common[: vocab_size - len(RESERVED_TOKENS)]
    if tokenizer == "wordpiece":
        from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

        vocab = learner.learn(
            list(word_counts.items()),
            vocab_size=vocab_size,
            reserved_tokens=RESERVED_TOKENS,
            lower_thresh=min_count,
            max_unique_chars=2000,
        )
        return list(vocab)
    raise ValueError(
        f"`tokenizer` must be 'word' or 'wordpiece'. Received: tokenizer={tokenizer!r}."
    )
