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


# Single characters the WordPiece vocabulary keeps at most (both learners), so that rare
# scripts do not crowd out subwords; other characters become [UNK].
MAX_UNIQUE_CHARACTERS = 2000
LEARNERS = ("huggingface", "tensorflow_text")


def learn_vocabulary(
    word_counts: collections.Counter, *, tokenizer: str, vocab_size: int, min_count: int = 2,
    learner: str = "huggingface",
) -> list[str]:
    """Learns the vocabulary: reserved tokens first, then words or WordPieces.

    Args:
        word_counts: word frequencies from the training split.
        tokenizer: "word" (most frequent words) or "wordpiece".
        vocab_size: the maximum size, reserved tokens included.
        min_count: rarer words map to `[UNK]` (word level) or are not merged into subwords
            (WordPiece).
        learner: WordPiece only: "huggingface" (the `tokenizers` trainer, in Rust: ~1 s on
            the tweets, made deterministic here) or "tensorflow_text" (tensorflow-text's
            learner, in Python: a binary search over a count threshold, walked in a few
            probes by `wordpiece_search`, ~4.5 s a probe on the tweets). Both are
            deterministic and write "##" continuation pieces for the same in-graph
            FastWordpiece tokenizer.

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
    if tokenizer != "wordpiece":
        raise ValueError(
            f"`tokenizer` must be 'word' or 'wordpiece'. Received: tokenizer={tokenizer!r}."
        )
    if learner == "huggingface":
        return _huggingface_wordpiece(word_counts, vocab_size, min_count)
    if learner == "tensorflow_text":
        from tfnlp.preprocessing import wordpiece_search

        return list(wordpiece_search.learn(
            word_counts, vocab_size=vocab_size, reserved_tokens=RESERVED_TOKENS,
            lower_thresh=min_count, max_unique_chars=MAX_UNIQUE_CHARACTERS,
        ))
    raise ValueError(f"`learner` must be one of {LEARNERS}. Received: learner={learner!r}.")


def _huggingface_wordpiece(word_counts: collections.Counter, vocab_size: int,
                           min_count: int) -> list[str]:
    """The `tokenizers` WordPiece trainer over the counted words (already normalised and
    pre-split in TF, so the trainer only splits on the spaces between them).

    Made deterministic: the trainer breaks ties between equally frequent merges by symbol
    id, and numbers the "##c" continuation symbols in hash order (random per process). Given
    first, in sorted order, as special tokens, they get fixed ids. It would also cut its
    alphabet in hash order among equally frequent characters, so the alphabet is chosen
    here and words with other characters are left out, as tensorflow-text's learner does.
    """
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        raise ImportError(
            "`preprocessing.vocabulary_learner: huggingface` needs the `tokenizers` library: "
            "pip install tokenizers (a dependency of tfnlp: reinstall it)."
        ) from None

    words = _words_in_alphabet(word_counts, MAX_UNIQUE_CHARACTERS)
    continuations = sorted({"##" + char for word in words for char in word[1:]})
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_count,
        special_tokens=RESERVED_TOKENS + continuations, continuing_subword_prefix="##",
        show_progress=False,
    )
    # Each word as often as it was counted (the trainer counts them again).
    batches = [[word] * count for word, count in words.items()]
    tokenizer.train_from_iterator(batches, trainer=trainer, length=len(batches))
    vocabulary = tokenizer.get_vocab()
    return sorted(vocabulary, key=vocabulary.get)


def _words_in_alphabet(word_counts: collections.Counter, size: int) -> dict[str, int]:
    """The words made only of the `size` most frequent characters (ties by code point).

    Example:
        >>> _words_in_alphabet(collections.Counter({"ab": 3, "ac": 1, "b": 1}), 2)
        {'ab': 3, 'b': 1}
    """
    characters: collections.Counter = collections.Counter()
    for word, count in word_counts.items():
        for char in word:
            characters[char] += count
    ranked = sorted(characters.items(), key=lambda item: (-item[1], item[0]))
    kept = {char for char, _ in ranked[:size]}
    return {word: count for word, count in word_counts.items() if kept.issuperset(word)}
