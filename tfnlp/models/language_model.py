"""Language models: token ids `[batch, time]` in, float32 next-token logits out.

Two families share one interface so training, evaluation and decoding treat them alike:

* `LSTMLanguageModel`: the classic stacked LSTM text generator (the article used LSTM(512) x 2
  with Dropout 0.2; the defaults here are smaller for CPUs). `step` advances the LSTM state,
  so generation costs one step per token.
* `TransformerLanguageModel`: a causal, pre-LayerNorm Transformer decoder with learned
  position embeddings and optionally tied input/output embeddings. It sees at most
  `context_length` tokens. Generation keeps each block's keys and values (a KV cache), so a
  step costs one token's work; past `context_length` tokens it re-reads the last
  `context_length` tokens every step.

Both compute their logits in float32 whatever the mixed-precision policy, and both decode
through the same graph-friendly methods (`tfnlp.models.decoding.generate_ids` calls them):

* `start(prompt_ids, max_tokens) -> (logits [batch, vocab], state)`: the logits of the token
  after each prompt (int32 `RaggedTensor` `[batch, (length)]`, non-empty rows);
* `step(token, state) -> (logits [batch, vocab], state)`: feeds one token `[batch]` per row;
* `next_token_logits(prompt_ids) -> [batch, vocab]`: the logits after each prompt, no state.

Prompts are right-padded inside these methods; the padding value never matters (the LSTM masks
it and attention is causal).
"""

from __future__ import annotations

from collections.abc import Callable

from tfnlp.backend import keras, tf
from tfnlp.config.schema import LANGUAGE_MODEL_NAMES, ModelConfig
from tfnlp.models.layers import PositionEmbedding, TransformerEncoderBlock


def _positive(key: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}.")


@keras.saving.register_keras_serializable(package="tfnlp")
class CausalTransformerBlock(TransformerEncoderBlock):
    """`TransformerEncoderBlock` whose queries attend only to themselves and earlier tokens."""

    def call(self, inputs, mask=None, training=None):
        x = tf.cast(self.attention_norm(inputs), self.compute_dtype)
        x = self.attention(x, x, use_causal_mask=True, training=training)
        residual = inputs + self.dropout_layer(x, training=training)
        return residual + self.feed_forward(residual, training=training)

    # Cached decoding. Keras' MultiHeadAttention has no key/value cache, so these call its own
    # projections and attention math (the sub-layers `call` builds) on cached keys and values:
    # the same weights and operations as `call` in inference mode.
    def call_and_cache(self, inputs):
        """`call` in inference mode, also returning the keys and values of every position.

        Args:
            inputs: `[batch, length, width]`.

        Returns:
            The outputs `[batch, length, width]` and `(keys, values)`, each
            `[batch, length, heads, key_dim]`.
        """
        x = tf.cast(self.attention_norm(inputs), self.compute_dtype)
        keys, values = self.attention._key_dense(x), self.attention._value_dense(x)
        causal = self.attention._compute_causal_mask(x)  # (1, length, length)
        return self._attend(inputs, x, keys, values, causal), (keys, values)

    def cached_call(self, inputs, cache, positions):
        """One token per row, attending to itself and the cached earlier positions.

        Args:
            inputs: `[batch, 1, width]`, each row's token at `positions` `[batch]`.
            cache: `(keys, values)`, each `[batch, slots, heads, key_dim]`; slots at and
                after each row's position are never read.

        Returns:
            The outputs `[batch, 1, width]` and the cache with this token's key and value
            written at its position.
        """
        x = tf.cast(self.attention_norm(inputs), self.compute_dtype)
        slots = tf.stack([tf.range(tf.shape(x)[0]), positions], axis=1)  # (B, 2)
        keys = tf.tensor_scatter_nd_update(cache[0], slots, self.attention._key_dense(x)[:, 0])
        values = tf.tensor_scatter_nd_update(cache[1], slots,
                                             self.attention._value_dense(x)[:, 0])
        visible = tf.range(tf.shape(keys)[1])[None, None, :] <= positions[:, None, None]
        return self._attend(inputs, x, keys, values, visible), (keys, values)

    def _attend(self, inputs, normed, keys, values, mask):
        attention = self.attention
        context, _ = attention._compute_attention(
            attention._query_dense(normed), keys, values, attention_mask=mask, training=False)
        residual = inputs + attention._output_dense(context)
        return residual + self.feed_forward(residual, training=False)


@keras.saving.register_keras_serializable(package="tfnlp")
class LSTMLanguageModel(keras.Model):
    """Embedding → stacked LSTM (+ Dropout) → Dense logits over the vocabulary.

    Args:
        vocabulary_size: the number of token ids.
        embedding_dim: the embedding width.
        units: LSTM units per layer.
        num_layers: stacked LSTM layers.
        dropout: dropout after each LSTM layer (the classic recipe's regulariser).

    Example:
        >>> model = LSTMLanguageModel(100, embedding_dim=16, units=32)
        >>> model(tf.zeros([2, 5], tf.int32)).shape
        TensorShape([2, 5, 100])
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int = 64,
        units: int = 256,
        num_layers: int = 2,
        dropout: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for key, value in (
            ("vocabulary_size", vocabulary_size),
            ("embedding_dim", embedding_dim),
            ("units", units),
            ("num_layers", num_layers),
        ):
            _positive(key, value)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.dropout = dropout
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.lstm_layers = [
            keras.layers.LSTM(units, return_sequences=True, return_state=True, name=f"lstm_{i}")
            for i in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, name="dropout")
        self.logits_layer = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def initial_state(self, batch_size) -> list[tf.Tensor]:
        """Zero `[h, c]` per layer for a batch (the state at the start of a text)."""
        zeros = tf.zeros([batch_size, self.units], self.compute_dtype)
        return [zeros] * (2 * self.num_layers)

    def run_sequence(self, ids, states, mask=None, training=False):
        """Runs `ids` `[batch, time]` from `states`; returns (logits, new states).

        With `mask`, masked steps leave the state unchanged (right-padded prompts).
        """
        x = self.embedding(ids)  # (B, T, E)
        new_states = []
        for i, lstm in enumerate(self.lstm_layers):
            x, h, c = lstm(x, initial_state=states[2 * i : 2 * i + 2], mask=mask, training=training)
            x = self.dropout_layer(x, training=training)
            new_states += [h, c]
        return self.logits_layer(x), new_states  # (B, T, V)

    def call(self, ids, training=None):
        ids = tf.convert_to_tensor(ids)
        logits, _ = self.run_sequence(ids, self.initial_state(tf.shape(ids)[0]), training=training)
        return logits

    def pipeline_units(self) -> list[tuple[str, list[keras.layers.Layer], Callable]]:
        """`call` as consecutive units, for pipeline parallelism (`tfnlp.training.pipeline`).

        Returns:
            `(name, layers, run)` per unit, in order: the embedding, each LSTM (with its
            dropout), the logits. `run(x, training)` maps the previous unit's output to this
            one's; chaining them from the ids computes `call(ids, training)` exactly. `layers`
            own the unit's weights.

        Example:
            >>> model = LSTMLanguageModel(30, embedding_dim=8, units=8)
            >>> [name for name, _, _ in model.pipeline_units()]
            ['embedding', 'lstm_0', 'lstm_1', 'logits']
        """

        def embed(ids, training=None):
            return self.embedding(tf.convert_to_tensor(ids))

        def recurrent(i, lstm):
            def run(x, training=None):
                # The zero state `call` starts from, sized by this micro-batch.
                states = self.initial_state(tf.shape(x)[0])[2 * i : 2 * i + 2]
                x, _, _ = lstm(x, initial_state=states, training=training)
                return self.dropout_layer(x, training=training)

            return run

        return [
            ("embedding", [self.embedding], embed),
            *[(lstm.name, [lstm], recurrent(i, lstm)) for i, lstm in enumerate(self.lstm_layers)],
            ("logits", [self.logits_layer], lambda x, training=None: self.logits_layer(x)),
        ]

    def start(self, prompt_ids: tf.RaggedTensor, max_tokens):
        """Reads the prompts; returns (logits of the next token, the LSTM state after them).

        Args:
            prompt_ids: int32 `RaggedTensor` `[batch, (length)]`, no empty rows.
            max_tokens: unused (the LSTM state does not grow); part of the shared interface.

        Returns:
            float32 logits `[batch, vocab]` and the state, `[h, c]` per layer.

        Example:
            >>> model = LSTMLanguageModel(30, embedding_dim=8, units=8)
            >>> logits, state = model.start(tf.ragged.constant([[3, 4, 5], [6]]), 10)
            >>> logits.shape, len(state)
            (TensorShape([2, 30]), 4)
        """
        ids = prompt_ids.to_tensor()  # (B, T)
        lengths = tf.cast(prompt_ids.row_lengths(), tf.int32)  # (B,)
        mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
        # Masked (padding) steps keep the state: each row ends in the state after its own prompt.
        logits, states = self.run_sequence(ids, self.initial_state(tf.shape(ids)[0]), mask=mask)
        return _last_logits(logits, lengths), states

    def step(self, token, state):
        """Feeds one token per row: one LSTM-cell step per layer.

        Args:
            token: int32 `[batch]`.
            state: the state from `start` or the previous `step`.

        Returns:
            float32 logits `[batch, vocab]` of the token after `token`, and the new state.

        Example:
            >>> model = LSTMLanguageModel(30, embedding_dim=8, units=8)
            >>> _, state = model.start(tf.ragged.constant([[3, 4]]), 10)
            >>> model.step(tf.constant([5]), state)[0].shape
            TensorShape([1, 30])
        """
        x = self.embedding(token)  # (B, E)
        new_state = []
        for i, lstm in enumerate(self.lstm_layers):
            x, (h, c) = lstm.cell(x, state[2 * i : 2 * i + 2], training=False)  # (B, units)
            new_state += [h, c]
        return tf.cast(self.logits_layer(x), tf.float32), new_state

    def next_token_logits(self, prompt_ids: tf.RaggedTensor) -> tf.Tensor:
        """float32 `[batch, vocab]`: the logits of the token after each prompt.

        Example:
            >>> model = LSTMLanguageModel(30, embedding_dim=8, units=8)
            >>> model.next_token_logits(tf.ragged.constant([[3, 4, 5], [6]])).shape
            TensorShape([2, 30])
        """
        return _next_token_logits(self, prompt_ids)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="tfnlp")
class TransformerLanguageModel(keras.Model):
    """Embedding + positions → causal Transformer blocks → LayerNorm → logits.

    Args:
        vocabulary_size: the number of token ids.
        context_length: the most tokens the model attends over (its position table size).
        embedding_dim: the model width.
        num_layers: decoder blocks.
        num_heads: attention heads (must divide `embedding_dim`).
        ff_dim: the feed-forward hidden width.
        dropout: dropout after embeddings, attention and feed-forward.
        tie_embeddings: the output layer is the transposed input embedding matrix.

    Example:
        >>> model = TransformerLanguageModel(100, 8, embedding_dim=16, num_heads=2)
        >>> model(tf.zeros([2, 5], tf.int32)).shape
        TensorShape([2, 5, 100])
    """

    def __init__(
        self,
        vocabulary_size: int,
        context_length: int,
        embedding_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_dim: int = 512,
        dropout: float = 0.1,
        tie_embeddings: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for key, value in (
            ("vocabulary_size", vocabulary_size),
            ("context_length", context_length),
            ("embedding_dim", embedding_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("ff_dim", ff_dim),
        ):
            _positive(key, value)
        if embedding_dim % num_heads:
            raise ValueError(
                "`embedding_dim` must be divisible by `num_heads`. Received: "
                f"embedding_dim={embedding_dim}, num_heads={num_heads}."
            )
        self.vocabulary_size = vocabulary_size
        self.context_length = context_length
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.positions = PositionEmbedding(context_length, name="positions")
        self.dropout_layer = keras.layers.Dropout(dropout, name="dropout")
        self.blocks = [
            CausalTransformerBlock(num_heads, ff_dim, dropout, name=f"block_{i}")
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype="float32", name="final_norm"
        )
        if not tie_embeddings:
            self.logits_layer = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def call(self, ids, training=None):
        x = self.embedding(tf.convert_to_tensor(ids))
        x = self.dropout_layer(self.positions(x), training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.logits(self.final_norm(x))

    def logits(self, x):
        """float32 next-token logits from final-norm outputs `[..., width]`."""
        if self.tie_embeddings:
            matrix = tf.cast(self.embedding.embeddings, tf.float32)
            return tf.matmul(tf.cast(x, tf.float32), matrix, transpose_b=True)
        return self.logits_layer(x)

    def pipeline_units(self) -> list[tuple[str, list[keras.layers.Layer], Callable]]:
        """`call` as consecutive units, for pipeline parallelism (`tfnlp.training.pipeline`).

        Returns:
            `(name, layers, run)` per unit, in order: the embedding, the positions (with their
            dropout), each block, the final norm, the logits. `run(x, training)` maps the
            previous unit's output to this one's; chaining them from the ids computes
            `call(ids, training)` exactly. `layers` own the unit's weights (none for tied
            logits, which read the embedding's).

        Example:
            >>> model = TransformerLanguageModel(30, 4, embedding_dim=8, num_heads=2)
            >>> [name for name, _, _ in model.pipeline_units()]
            ['embedding', 'positions', 'block_0', 'block_1', 'final_norm', 'logits']
        """

        def embed(ids, training=None):
            return self.embedding(tf.convert_to_tensor(ids))

        def positions(x, training=None):
            return self.dropout_layer(self.positions(x), training=training)

        def block_run(block):
            return lambda x, training=None: block(x, training=training)

        return [
            ("embedding", [self.embedding], embed),
            ("positions", [self.positions, self.dropout_layer], positions),
            *[(block.name, [block], block_run(block)) for block in self.blocks],
            ("final_norm", [self.final_norm], lambda x, training=None: self.final_norm(x)),
            ("logits", [] if self.tie_embeddings else [self.logits_layer],
             lambda x, training=None: self.logits(x)),
        ]

    def start(self, prompt_ids: tf.RaggedTensor, max_tokens):
        """Reads the prompts; returns (next-token logits, state).

        While every row is shorter than `context_length`, `step` runs one token through the
        blocks against each block's cached keys and values. Longer texts no longer fit the
        position table: `step` then re-reads each row's last `context_length` tokens.

        Args:
            prompt_ids: int32 `RaggedTensor` `[batch, (length)]`, no empty rows.
            max_tokens: int scalar, the most tokens `step` will be fed (sizes the buffer).

        Returns:
            float32 logits `[batch, vocab]` and the state `(buffer, positions, cache)`: every
            token so far `[batch, length + max_tokens + context_length]`, each row's count
            `[batch]`, and per block `(keys, values)` for the first `context_length`
            positions, each `[batch, context_length, heads, key_dim]`.

        Example:
            >>> model = TransformerLanguageModel(30, 4, embedding_dim=8, num_heads=2)
            >>> logits, state = model.start(tf.ragged.constant([[3, 4, 5], [6]]), 10)
            >>> logits.shape, state[1].numpy().tolist(), state[2][0][0].shape
            (TensorShape([2, 30]), [3, 1], TensorShape([2, 4, 2, 4]))
        """
        ids = tf.cast(prompt_ids.to_tensor(), tf.int32)  # (B, T)
        lengths = tf.cast(prompt_ids.row_lengths(), tf.int32)  # (B,)
        max_tokens = tf.maximum(tf.cast(max_tokens, tf.int32), 0)
        # Room for the prompt, every generated token and a window reaching past the end.
        padding = tf.zeros([tf.shape(ids)[0], max_tokens + self.context_length], tf.int32)
        buffer = tf.concat([ids, padding], axis=1)  # (B, T + max_tokens + context)
        if not self.built:
            self(ids[:, :1])  # the cached path reads sub-layers that only a call creates

        def cached():
            logits, cache = self._prompt_with_cache(ids)
            return _last_logits(logits, lengths), cache

        def windowed():
            return self._window_logits(buffer, lengths), self._empty_cache(tf.shape(ids)[0])

        logits, cache = tf.cond(tf.shape(ids)[1] <= self.context_length, cached, windowed)
        return logits, (buffer, lengths, cache)

    def step(self, token, state):
        """Appends one token per row: one token's work against the cache, or (past
        `context_length` tokens) a re-read of each row's last `context_length` tokens.

        Args:
            token: int32 `[batch]`.
            state: `(buffer, positions, cache)` from `start` or the previous `step`.

        Returns:
            float32 logits `[batch, vocab]` of the token after `token`, and the new state.

        Example:
            >>> model = TransformerLanguageModel(30, 4, embedding_dim=8, num_heads=2)
            >>> _, state = model.start(tf.ragged.constant([[3, 4]]), 10)
            >>> logits, state = model.step(tf.constant([5]), state)
            >>> logits.shape, state[1].numpy().tolist()
            (TensorShape([1, 30]), [3])
        """
        buffer, positions, cache = state
        rows = tf.range(tf.shape(buffer)[0])
        buffer = tf.tensor_scatter_nd_update(buffer, tf.stack([rows, positions], axis=1), token)

        def cached():
            return self._cached_step(token, positions, cache)

        def windowed():
            return self._window_logits(buffer, positions + 1), cache

        # Every row's new token must fit the position table for the cached step.
        logits, cache = tf.cond(tf.reduce_max(positions) < self.context_length, cached,
                                windowed)
        return logits, (buffer, positions + 1, cache)

    def _prompt_with_cache(self, ids):
        """Logits `[batch, length, vocab]` of `length <= context_length` ids, and the cache."""
        x = self.positions(self.embedding(ids))
        slots = self.context_length - tf.shape(ids)[1]
        cache = []
        for block in self.blocks:
            x, (keys, values) = block.call_and_cache(x)
            padding = [[0, 0], [0, slots], [0, 0], [0, 0]]
            cache.append((tf.pad(keys, padding), tf.pad(values, padding)))
        return self.logits(self.final_norm(x)), tuple(cache)

    def _cached_step(self, token, positions, cache):
        x = self.embedding(token[:, None])  # (B, 1, E)
        table = tf.gather(self.positions.position_embeddings, positions)[:, None]  # (B, 1, E)
        x = x + tf.cast(table, x.dtype)
        new_cache = []
        for block, block_cache in zip(self.blocks, cache):
            x, block_cache = block.cached_call(x, block_cache, positions)
            new_cache.append(block_cache)
        logits = self.logits(self.final_norm(x))[:, 0]  # (B, V)
        return tf.cast(logits, tf.float32), tuple(new_cache)

    def _empty_cache(self, batch_size):
        heads = self.num_heads
        shape = [batch_size, self.context_length, heads, self.embedding_dim // heads]
        zeros = tf.zeros(shape, self.blocks[0].compute_dtype)
        return tuple((zeros, zeros) for _ in self.blocks)

    def _window_logits(self, buffer, positions):
        """float32 `[batch, vocab]` logits after each row's first `positions` buffer tokens."""
        context = self.context_length
        start = tf.maximum(positions - context, 0)  # (B,)
        window = tf.gather(buffer, start[:, None] + tf.range(context)[None], batch_dims=1)
        logits = self(window, training=False)  # (B, context, V)
        # Causal attention: what follows each row's last token cannot change its logits.
        return tf.cast(tf.gather(logits, positions - 1 - start, batch_dims=1), tf.float32)

    def next_token_logits(self, prompt_ids: tf.RaggedTensor) -> tf.Tensor:
        """float32 `[batch, vocab]`: the logits after each prompt's last `context_length` tokens.

        Example:
            >>> model = TransformerLanguageModel(30, 4, embedding_dim=8, num_heads=2)
            >>> model.next_token_logits(tf.ragged.constant([[3, 4, 5, 6, 7, 8], [6]])).shape
            TensorShape([2, 30])
        """
        # Only the last `context_length` tokens fit the position table.
        return _next_token_logits(self, prompt_ids[:, -self.context_length :])

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "context_length": self.context_length,
            "embedding_dim": self.embedding_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "tie_embeddings": self.tie_embeddings,
        }


def _last_logits(logits, lengths):
    """float32 `[batch, vocab]`: each row's logits at position `lengths - 1`."""
    return tf.cast(tf.gather(logits, lengths - 1, batch_dims=1), tf.float32)


def _next_token_logits(model: keras.Model, prompt_ids: tf.RaggedTensor) -> tf.Tensor:
    # Right padding is harmless: both models are causal.
    logits = model(prompt_ids.to_tensor(), training=False)  # (B, T, V)
    return _last_logits(logits, tf.cast(prompt_ids.row_lengths(), tf.int32))


def build_language_model(
    config: ModelConfig, vocabulary_size: int, context_length: int, tie_embeddings: bool = False
) -> keras.Model:
    """Builds (and creates the weights of) the language model named by `config.name`.

    Args:
        config: the `model:` section (name, sizes, dropout).
        vocabulary_size: the tokenizer's vocabulary size.
        context_length: the training window length (the Transformer's position table).
        tie_embeddings: Transformer only: share the input and output embedding matrix.

    Raises:
        ValueError: a model name that is not a language model.
    """
    if config.name == "lstm":
        model = LSTMLanguageModel(
            vocabulary_size,
            embedding_dim=config.embedding_dim,
            units=config.units,
            num_layers=config.num_layers,
            dropout=config.dropout,
            name="lstm_language_model",
        )
    elif config.name == "transformer":
        model = TransformerLanguageModel(
            vocabulary_size,
            context_length,
            embedding_dim=config.embedding_dim,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            ff_dim=config.ff_dim,
            dropout=config.dropout,
            tie_embeddings=tie_embeddings,
            name="transformer_language_model",
        )
    else:
        raise ValueError(
            f"`model.name` must be one of {LANGUAGE_MODEL_NAMES} for `task: language_model`. "
            f"Received: model.name={config.name!r}."
        )
    model(keras.Input(shape=(None,), dtype=tf.int32))  # symbolic: builds, computes nothing
    return model
