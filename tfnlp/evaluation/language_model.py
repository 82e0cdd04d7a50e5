"""Held-out language-model metrics: cross-entropy, perplexity, bits per token and per character,
and how much of what the model writes is real words."""

from __future__ import annotations

import math
import re

from tfnlp.backend import tf


def cross_entropy_totals(model, dataset: tf.data.Dataset) -> tuple[float, int]:
    """Summed next-token cross-entropy (nats) and the number of predicted tokens.

    Args:
        model: maps int ids `[batch, time]` to logits `[batch, time, vocab]`.
        dataset: (inputs, targets) batches, e.g. `build_windows(...)`.

    Example:
        >>> def uniform(inputs, training=False):  # equal logits over 4 tokens: ln 4 nats each
        ...     return tf.zeros(tf.concat([tf.shape(inputs), [4]], axis=0))
        >>> ids = tf.ones([2, 3], tf.int32)
        >>> total, count = cross_entropy_totals(uniform, tf.data.Dataset.from_tensors((ids, ids)))
        >>> round(total / count / math.log(4.0), 6), count
        (1.0, 6)
    """

    @tf.function
    def batch_totals(inputs, targets):
        logits = tf.cast(model(inputs, training=False), tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        return tf.reduce_sum(tf.cast(losses, tf.float64)), tf.size(targets)

    total, count = 0.0, 0
    for inputs, targets in dataset:
        nats, tokens = batch_totals(inputs, targets)
        total += float(nats)
        count += int(tokens)
    return total, count


def language_model_metrics(
    total_nats: float, tokens: int, characters_per_token: float = 1.0
) -> dict[str, float]:
    """Perplexity and bits from a summed cross-entropy.

    Args:
        total_nats: summed cross-entropy in nats over `tokens` predictions.
        tokens: how many tokens were predicted.
        characters_per_token: text characters per token in the evaluated stream (1 for
            character models); turns bits per token into bits per character.

    Returns:
        `cross_entropy` (nats/token), `perplexity` (exp of it), `bits_per_token` and
        `bits_per_character`, and `tokens`.

    Raises:
        ValueError: no tokens.

    Example:
        >>> metrics = language_model_metrics(4 * math.log(4.0), tokens=4, characters_per_token=2)
        >>> {key: round(value, 6) for key, value in metrics.items()}
        {'cross_entropy': 1.386294, 'perplexity': 4.0, 'bits_per_token': 2.0,
         'bits_per_character': 1.0, 'tokens': 4}
    """
    if tokens <= 0:
        raise ValueError(f"`tokens` must be positive. Received: tokens={tokens!r}.")
    nats = total_nats / tokens
    bits = nats / math.log(2.0)
    return {
        "cross_entropy": nats,
        "perplexity": math.exp(nats),
        "bits_per_token": bits,
        "bits_per_character": bits / characters_per_token,
        "tokens": tokens,
    }


def evaluate_language_model(model, dataset, characters_per_token: float = 1.0) -> dict:
    """`language_model_metrics` of `model` over a held-out (inputs, targets) dataset.

    Example:
        >>> def uniform(inputs, training=False):  # equal logits over 8 tokens
        ...     return tf.zeros(tf.concat([tf.shape(inputs), [8]], axis=0))
        >>> ids = tf.ones([2, 3], tf.int32)
        >>> metrics = evaluate_language_model(uniform, tf.data.Dataset.from_tensors((ids, ids)))
        >>> round(metrics["perplexity"], 6), round(metrics["bits_per_token"], 6)
        (8.0, 3.0)
    """
    total, count = cross_entropy_totals(model, dataset)
    return language_model_metrics(total, count, characters_per_token)


# Leading and trailing punctuation (and symbols such as emoji) around a word.
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")


def words(text: str) -> list[str]:
    """The whitespace-separated words of `text`, stripped of leading and trailing punctuation;
    words of punctuation alone are left out.

    WordPiece detokenizes "it!" as "it !": stripping makes both spellings the word "it", so a
    tokenizer that spaces out punctuation gains nothing from it.

    Example:
        >>> words("it's fine! , (really)")
        ["it's", 'fine', 'really']
    """
    stripped = (_EDGE_PUNCTUATION.sub("", word) for word in text.split())
    return [word for word in stripped if word]


def real_word_rate(continuations: list[str], known_words: set[str]) -> float:
    """The share of the `words` of `continuations` found in `known_words`.

    Each continuation's last whitespace-separated word is left out: the token limit usually
    cuts it short.

    Example:
        >>> real_word_rate(["the cat sat dow", "zzq the ! ca"], {"the", "cat", "sat"})
        0.8
        >>> real_word_rate(["the, cat. ! sat"], {"the", "cat"})
        1.0
    """
    heads = [text.rsplit(None, 1)[0] for text in continuations if len(text.split()) > 1]
    found = [word for head in heads for word in words(head)]
    return sum(word in known_words for word in found) / len(found) if found else 0.0
