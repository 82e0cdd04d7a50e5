"""Custom Keras layers shared by the encoders (registered, with complete `get_config`)."""

from __future__ import annotations

from tfnlp.backend import keras, tf


@keras.saving.register_keras_serializable(package="tfnlp")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each position to a `[batch, length, dim]` input.

    Args:
        sequence_length: the longest sequence the layer can take.
    """

    def __init__(self, sequence_length: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(sequence_length, int) or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be a positive integer. "
                f"Received: sequence_length={sequence_length!r}."
            )
        self.sequence_length = sequence_length
        self.supports_masking = True

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        super().build(input_shape)

    def call(self, inputs):
        if inputs.shape[1] == self.sequence_length:
            # Full-length inputs need no slice; DTensor crashes on a dynamic one.
            positions = tf.cast(self.position_embeddings, inputs.dtype)
        else:
            positions = tf.cast(self.position_embeddings[: tf.shape(inputs)[1]], inputs.dtype)
        return inputs + positions  # (B, L, D) + (L, D) broadcasts

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length}


@keras.saving.register_keras_serializable(package="tfnlp")
class MaskedMeanPooling(keras.layers.GlobalAveragePooling1D):
    """Keras's masked mean over time, except that a row with no tokens (an empty text) pools
    to zeros: Keras divides 0 by 0 there, and the classifier answered NaN probabilities.

    Example:
        >>> x = tf.ones([2, 3, 4])
        >>> mask = tf.constant([[True, True, False], [False, False, False]])
        >>> MaskedMeanPooling()(x, mask=mask).numpy()[:, 0].tolist()
        [1.0, 0.0]
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        weights = tf.expand_dims(tf.cast(mask, inputs.dtype), -1)  # (B, T, 1)
        return tf.math.divide_no_nan(tf.reduce_sum(inputs * weights, axis=1),
                                     tf.reduce_sum(weights, axis=1))


@keras.saving.register_keras_serializable(package="tfnlp")
class TransformerEncoderBlock(keras.layers.Layer):
    """A pre-LayerNorm Transformer encoder block that respects the padding mask.

    x + Dropout(MHA(LN(x))), then x + Dropout(FFN(LN(x))). Pre-LN trains stably without
    warm-up, which matters for short runs. Sub-layers take this layer's dtype policy so mixed
    precision reaches every weight; LayerNorm and the attention softmax compute in float32.

    Args:
        num_heads: attention heads; the model width must be divisible by it.
        ff_dim: the hidden width of the feed-forward network.
        dropout: dropout rate after attention and the feed-forward network.
    """

    # Subclasses may swap the attention implementation (see tfnlp.compression.id_model).
    attention_class = keras.layers.MultiHeadAttention

    def __init__(self, num_heads: int, ff_dim: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        for key, value in (("num_heads", num_heads), ("ff_dim", ff_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{key}` must be a positive integer. Received: {key}={value!r}."
                )
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.supports_masking = True

    def build(self, input_shape):
        width = int(input_shape[-1])
        if width % self.num_heads:
            raise ValueError(
                f"The model width ({width}) must be divisible by `num_heads`. "
                f"Received: num_heads={self.num_heads}."
            )
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype="float32", name="attention_norm"
        )
        self.attention = self.attention_class(
            self.num_heads, width // self.num_heads, dropout=self.dropout, dtype=policy,
            name="attention",
        )
        self.ff_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype="float32", name="ff_norm"
        )
        self.ff_hidden = keras.layers.Dense(
            self.ff_dim, activation="gelu", dtype=policy, name="ff_hidden"
        )
        self.ff_output = keras.layers.Dense(width, dtype=policy, name="ff_output")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        super().build(input_shape)

    def call(self, inputs, mask=None, training=None):
        attention_mask = None
        if mask is not None:
            # [batch, length] -> [batch, 1, length]: every query may attend to real tokens only.
            attention_mask = tf.cast(tf.expand_dims(mask, 1), tf.bool)
        x = tf.cast(self.attention_norm(inputs), self.compute_dtype)
        x = self.attention(x, x, attention_mask=attention_mask, training=training)
        residual = inputs + self.dropout_layer(x, training=training)
        return residual + self.feed_forward(residual, training=training)

    def feed_forward(self, residual, training=None):
        """Dropout(FFN(LN(residual))): the block's second half, before its residual add."""
        x = tf.cast(self.ff_norm(residual), self.compute_dtype)
        return self.dropout_layer(self.ff_output(self.ff_hidden(x)), training=training)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        }
