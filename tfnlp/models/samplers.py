"""Sampling strategies: small, serializable objects that turn next-token logits into token ids.

A sampler is called as `sampler(logits, step, seed)` on float32 logits `[batch, vocab]` and
returns int32 token ids `[batch]`; the decoding loop (`tfnlp.models.decoding.generate_ids`)
calls it once per generated token. Every sampler is plain TensorFlow ops, so it runs eagerly,
inside a `tf.function` / `tf.while_loop` and in an exported SavedModel.

* `GreedySampler`: the most likely token.
* `RandomSampler`: a sample from softmax(logits / temperature); temperature 0 is greedy.
* `TopKSampler`: the same, cut to the `top_k` most likely tokens.
* `TopPSampler`: the same, cut to the smallest set whose probability reaches `top_p`
  (nucleus sampling), optionally also to the `top_k` most likely.

Random samplers use stateless random ops keyed by (seed, step), row by row: the same seed
gives the same text, whatever else is in the batch. Every option may be a scalar or one value
per row (`[batch]`), which is what the exported, batching-safe signatures pass. Options given
as Python numbers are validated when the sampler is made; options given as tensors (an
exported signature's inputs) are taken as they are, and `sampler_from_options` builds the
sampler that handles them in-graph.
"""

from __future__ import annotations

import numbers

from tfnlp.backend import keras, tf

# The logit of a token a sampler must not pick (finite, so softmax never sees a row of -inf).
MASKED_LOGIT = -1e9
# Temperatures are clipped here before dividing (temperature 0 means greedy, never a division).
_MIN_TEMPERATURE = 1e-6


def _is_tensor(value) -> bool:
    return isinstance(value, (tf.Tensor, tf.Variable))


def per_row(value, logits: tf.Tensor, dtype) -> tf.Tensor:
    """An option given once (a scalar) or per row (`[batch]`), as `[batch]` of `dtype`.

    Exported signatures take every option per example, so a batching server can merge
    requests that asked for different options into one batch.
    """
    return tf.broadcast_to(tf.reshape(tf.cast(value, dtype), [-1]), tf.shape(logits)[:1])


def sample_rows(logits: tf.Tensor, seeds: tf.Tensor, step) -> tf.Tensor:
    """One categorical sample per row, each keyed by (its own seed, step).

    Row by row, so a row's sample depends on its logits and seed only, never on the other
    rows of the batch (a batching server merges independent requests).

    Args:
        logits: float32 `[batch, vocab]`.
        seeds: int64 `[batch]`.
        step: int scalar.

    Returns:
        int32 `[batch]`.
    """
    step = tf.cast(step, tf.int64)

    def one(row):
        row_logits, seed = row
        key = tf.stack([seed, step])
        return tf.random.stateless_categorical(row_logits[None], 1, seed=key,
                                               dtype=tf.int32)[0, 0]

    return tf.map_fn(one, (logits, seeds), fn_output_signature=tf.int32)


def check_temperature(temperature) -> None:
    """Raises `ValueError` unless `temperature` is a number >= 0 (tensors pass unchecked)."""
    if _is_tensor(temperature):
        return
    if not (_is_number(temperature) and temperature >= 0):
        raise ValueError(
            f"`temperature` must be 0 (greedy) or positive. Received: temperature={temperature!r}."
        )


def check_top_k(top_k) -> None:
    """Raises `ValueError` unless `top_k` is an integer >= 0 (tensors pass unchecked)."""
    if _is_tensor(top_k):
        return
    if not (_is_integer(top_k) and top_k >= 0):
        raise ValueError(
            f"`top_k` must be 0 (off) or a positive integer. Received: top_k={top_k!r}."
        )


def check_top_p(top_p) -> None:
    """Raises `ValueError` unless `top_p` is a number in (0, 1] (tensors pass unchecked)."""
    if _is_tensor(top_p):
        return
    if not (_is_number(top_p) and 0 < top_p <= 1):
        raise ValueError(f"`top_p` must be in (0, 1] (1 is off). Received: top_p={top_p!r}.")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def filter_logits(logits: tf.Tensor, top_k, top_p) -> tf.Tensor:
    """Sets logits outside the top-k / top-p (nucleus) set to `MASKED_LOGIT`.

    Args:
        logits: float32 `[batch, vocab]`.
        top_k: int32, scalar or `[batch]`; 0 (or >= vocab) keeps every token.
        top_p: float32, scalar or `[batch]`, in (0, 1]; 1 keeps every token. The most likely
            token always stays.

    Returns:
        The filtered logits, same shape.

    Example:
        >>> logits = tf.math.log(tf.constant([[0.5, 0.3, 0.15, 0.05]]))
        >>> (filter_logits(logits, 0, 0.7).numpy() > MASKED_LOGIT).tolist()
        [[True, True, False, False]]
    """
    vocab = tf.shape(logits)[-1]
    top_k = per_row(top_k, logits, tf.int32)  # (B,)
    top_p = per_row(top_p, logits, tf.float32)[:, None]  # (B, 1)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)

    def filtered():
        # One sort serves both cuts: masking below the k-th largest keeps the order.
        ranked = tf.sort(logits, axis=-1, direction="DESCENDING")  # (B, V)
        kth_largest = tf.gather(ranked, k - 1, batch_dims=1)[:, None]  # (B, 1)
        ranked = tf.where(ranked < kth_largest, MASKED_LOGIT, ranked)
        # Probability mass of the tokens ranked above each one: keep while it is below top_p.
        mass_before = tf.cumsum(tf.nn.softmax(ranked, axis=-1), axis=-1, exclusive=True)
        keep = tf.logical_or(mass_before < top_p, top_p >= 1.0)
        smallest_kept = tf.reduce_min(tf.where(keep, ranked, -MASKED_LOGIT), axis=-1,
                                      keepdims=True)
        smallest_kept = tf.maximum(smallest_kept, kth_largest)
        return tf.where(logits < smallest_kept, MASKED_LOGIT, logits)

    # Sorting the vocabulary is most of a decoding step's cost at large batches: skip it when
    # no row asks for a cut.
    cuts = tf.logical_or(tf.reduce_any(k < vocab), tf.reduce_any(top_p < 1.0))
    return tf.cond(cuts, filtered, lambda: tf.identity(logits))


class Sampler:
    """The base of every sampler: `sampler(logits, step, seed) -> token ids`.

    Subclasses implement `sample`, and list their constructor arguments in `get_config`.
    """

    def __call__(self, logits, step=0, seed=0) -> tf.Tensor:
        """The next token id per row.

        Args:
            logits: `[batch, vocab]` next-token logits (computed on in float32).
            step: int scalar, the position in the generated text.
            seed: int64 scalar; with `step` it keys the stateless random ops.

        Returns:
            int32 `[batch]`.
        """
        return self.sample(tf.cast(logits, tf.float32), step, seed)

    def sample(self, logits: tf.Tensor, step, seed) -> tf.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement `sample`.")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Sampler:
        return cls(**config)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({options})"


@keras.saving.register_keras_serializable(package="tfnlp")
class GreedySampler(Sampler):
    """The most likely token (the seed and step are ignored).

    Example:
        >>> GreedySampler()(tf.constant([[0.1, 2.0, 0.3]]), 0, 0).numpy()
        array([1], dtype=int32)
    """

    def sample(self, logits, step, seed):
        return tf.argmax(logits, axis=-1, output_type=tf.int32)


@keras.saving.register_keras_serializable(package="tfnlp")
class RandomSampler(Sampler):
    """A sample from softmax(logits / temperature), keyed by (seed, step).

    Args:
        temperature: > 1 flattens the distribution, < 1 sharpens it; 0 is greedy.

    Raises:
        ValueError: a negative temperature.

    Example:
        >>> sampler = RandomSampler(temperature=0.8)
        >>> logits = tf.zeros([2, 10])
        >>> bool(tf.reduce_all(sampler(logits, 0, 7) == sampler(logits, 0, 7)))
        True
    """

    def __init__(self, temperature=1.0):
        check_temperature(temperature)
        self.temperature = temperature

    def filter(self, logits: tf.Tensor) -> tf.Tensor:
        """The candidate set: subclasses mask the tokens they never pick."""
        return logits

    def sample(self, logits, step, seed):
        greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (B,)
        temperature = per_row(self.temperature, logits, tf.float32)  # (B,)
        scaled = self.filter(logits / tf.maximum(temperature, _MIN_TEMPERATURE)[:, None])
        sampled = sample_rows(scaled, per_row(seed, logits, tf.int64), step)  # (B,)
        return tf.where(temperature > 0.0, sampled, greedy)

    def get_config(self):
        return {"temperature": self.temperature}


@keras.saving.register_keras_serializable(package="tfnlp")
class TopKSampler(RandomSampler):
    """Samples among the `top_k` most likely tokens (see `RandomSampler`).

    Args:
        top_k: how many tokens stay candidates; 0 keeps all of them.
        temperature: see `RandomSampler`.

    Raises:
        ValueError: a negative or non-integer `top_k`, or a negative temperature.

    Example:
        >>> sampler = TopKSampler(top_k=1)
        >>> sampler(tf.constant([[0.1, 2.0, 0.3]]), 0, 7).numpy()
        array([1], dtype=int32)
    """

    def __init__(self, top_k, temperature=1.0):
        super().__init__(temperature)
        check_top_k(top_k)
        self.top_k = top_k

    def filter(self, logits):
        return filter_logits(logits, self.top_k, 1.0)

    def get_config(self):
        return {"top_k": self.top_k, "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="tfnlp")
class TopPSampler(RandomSampler):
    """Nucleus sampling: among the fewest tokens whose probability reaches `top_p`.

    Args:
        top_p: the probability mass kept, in (0, 1]; 1 keeps every token.
        temperature: see `RandomSampler` (applied before the mass is measured).
        top_k: also keep at most this many tokens; 0 is off.

    Raises:
        ValueError: `top_p` outside (0, 1], a bad `top_k` or a negative temperature.

    Example:
        >>> sampler = TopPSampler(top_p=0.5)
        >>> sampler(tf.math.log(tf.constant([[0.2, 0.7, 0.1]])), 0, 7).numpy()
        array([1], dtype=int32)
    """

    def __init__(self, top_p, temperature=1.0, top_k=0):
        super().__init__(temperature)
        check_top_p(top_p)
        check_top_k(top_k)
        self.top_p = top_p
        self.top_k = top_k

    def filter(self, logits):
        return filter_logits(logits, self.top_k, self.top_p)

    def get_config(self):
        return {"top_p": self.top_p, "temperature": self.temperature, "top_k": self.top_k}


def sampler_from_options(temperature=1.0, top_k=0, top_p=1.0) -> Sampler:
    """The sampler for decoding options, as a command line or a signature gives them.

    Python numbers are validated and give the simplest sampler that does the job. If any
    option is a tensor (traced signature inputs), the choice happens in-graph: a `TopPSampler`
    with those tensors, greedy where `temperature` <= 0 (callers validate tensor options).

    Args:
        temperature: 0 is greedy; otherwise the sampling temperature.
        top_k: 0 is off; otherwise sample among the `top_k` most likely tokens.
        top_p: 1 is off; otherwise nucleus sampling with this mass.

    Returns:
        A `Sampler`.

    Raises:
        ValueError: an option outside its range.

    Example:
        >>> sampler_from_options(0.0, 0, 1.0)
        GreedySampler()
        >>> sampler_from_options(0.8, 40, 1.0)
        TopKSampler(top_k=40, temperature=0.8)
    """
    if any(_is_tensor(value) for value in (temperature, top_k, top_p)):
        return TopPSampler(top_p, temperature=temperature, top_k=top_k)
    check_temperature(temperature)
    check_top_k(top_k)
    check_top_p(top_p)
    if temperature == 0:
        return GreedySampler()
    if top_p < 1:
        return TopPSampler(top_p, temperature=temperature, top_k=top_k)
    if top_k > 0:
        return TopKSampler(top_k, temperature=temperature)
    return RandomSampler(temperature)
