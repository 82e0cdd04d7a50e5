"""The decoding loop: a language model's `start` / `step` driven by a sampler, in-graph.

`generate_ids` knows nothing about model families: any model with

* `start(prompt_ids, max_tokens) -> (logits [batch, vocab] float32, state)` and
* `step(token [batch] int32, state) -> (logits [batch, vocab] float32, state)`

decodes, one `tf.while_loop` iteration per token, so it runs inside a `tf.function` and in an
exported SavedModel. The loop, not the sampler, owns the token policy: [PAD] and [UNK] are
never generated, a row stops at [EOS] and is padded with [PAD] after it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

from tfnlp.backend import tf
from tfnlp.models.samplers import MASKED_LOGIT, sampler_from_options
from tfnlp.preprocessing.lm_tokenizer import EOS_ID, PAD_ID, UNK_ID

# Padding marks finished rows and [UNK] is no word: neither is worth generating.
NEVER_GENERATED = (PAD_ID, UNK_ID)


def check_decoding_options(max_tokens, temperature, top_k, top_p) -> None:
    """Raises `ValueError` for options outside their ranges (named as on the command line).

    Example:
        >>> check_decoding_options(20, 0.8, 0, 1.5)
        Traceback (most recent call last):
        ...
        ValueError: `top_p` must be in (0, 1] (1 is off). Received: top_p=1.5.
    """
    ok = isinstance(max_tokens, numbers.Integral) and not isinstance(max_tokens, bool)
    if not (ok and max_tokens >= 0):
        raise ValueError(
            f"`max_tokens` must be a non-negative integer. Received: max_tokens={max_tokens!r}."
        )
    sampler_from_options(temperature, top_k, top_p)


def mask_never_generated(logits: tf.Tensor) -> tf.Tensor:
    """float32 `logits` `[batch, vocab]` with the `NEVER_GENERATED` ids pushed to -1e9."""
    logits = tf.cast(logits, tf.float32)
    reserved = tf.one_hot(NEVER_GENERATED, tf.shape(logits)[-1], dtype=tf.float32)  # (2, V)
    return logits + tf.reduce_sum(reserved, axis=0) * MASKED_LOGIT


def generate_ids(model, prompt_ids: tf.RaggedTensor, max_tokens, sampler, seed=0) -> tf.Tensor:
    """Continues each prompt until [EOS] or `max_tokens` new tokens.

    Args:
        model: a language model with `start` and `step` (see the module docstring).
        prompt_ids: int32 `RaggedTensor` `[batch, (length)]`, each row a non-empty prompt.
        max_tokens: int, scalar or per row `[batch]` (negative counts as 0).
        sampler: a `Sampler`, or a mapping of `sampler_from_options` arguments
            (`temperature`, `top_k`, `top_p`; tensors, scalar or `[batch]`, allowed).
        seed: int64, scalar or `[batch]`; with the step it keys each row's random ops.

    Returns:
        int32 `[batch, steps]`, steps <= the largest max_tokens: the generated ids (the [EOS]
        included), [PAD] after a row's [EOS] or its own max_tokens.

    Example:
        >>> from tfnlp.models.language_model import LSTMLanguageModel
        >>> from tfnlp.models.samplers import GreedySampler
        >>> model = LSTMLanguageModel(20, embedding_dim=8, units=8)
        >>> ids = generate_ids(model, tf.ragged.constant([[3, 4], [5]]), 6, GreedySampler())
        >>> ids.shape[0], ids.shape[1] <= 6
        (2, True)
    """
    if isinstance(sampler, Mapping):
        sampler = sampler_from_options(**sampler)
    batch = tf.cast(prompt_ids.nrows(), tf.int32)
    row_limits = tf.broadcast_to(  # (B,)
        tf.reshape(tf.maximum(tf.cast(max_tokens, tf.int32), 0), [-1]), [batch])
    longest = tf.reduce_max(tf.concat([row_limits, [0]], axis=0))
    first_logits, state = model.start(prompt_ids, longest)  # (B, V)

    def not_done(step, logits, finished, tokens, state):
        return tf.logical_and(step < longest, tf.logical_not(tf.reduce_all(finished)))

    def body(step, logits, finished, tokens, state):
        finished = tf.logical_or(finished, step >= row_limits)
        token = sampler(mask_never_generated(logits), step, seed)  # (B,)
        token = tf.where(finished, PAD_ID, token)
        tokens = tokens.write(step, token)
        finished = tf.logical_or(finished, tf.equal(token, EOS_ID))
        logits, state = model.step(token, state)
        return step + 1, logits, finished, tokens, state

    tokens = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])
    steps, _, _, tokens, _ = tf.while_loop(
        not_done, body, (tf.constant(0), first_logits, tf.zeros([batch], tf.bool), tokens, state)
    )
    # (steps, B) -> (B, steps); an empty TensorArray cannot stack without a shape.
    stacked = tf.cond(steps > 0, tokens.stack, lambda: tf.zeros([0, batch], tf.int32))
    return tf.transpose(tf.reshape(stacked, [-1, batch]))
