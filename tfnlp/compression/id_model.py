"""The id-level classifier that tfmot and TFLite work on: token ids in, logits out.

The trained model starts with the `TextPreprocessor` (tensorflow-text ops, which are neither
TFLite builtins nor something tfmot can wrap). Every compression pass therefore works on the
layers *after* it, rebuilt on an int32 `[batch, sequence_length]` input, with the padding
mask computed from the ids and passed explicitly to the layers that take one. The explicit
mask matters: tfmot's wrappers do not propagate Keras' implicit mask, so a pruned Embedding
would otherwise let the LSTM read the padding.
"""

from __future__ import annotations

import inspect

from tfnlp.backend import keras, tf
from tfnlp.models.layers import MaskedMeanPooling, TransformerEncoderBlock
from tfnlp.preprocessing.layer import TextPreprocessor


@keras.saving.register_keras_serializable(package="tfnlp")
class PaddingMask(keras.layers.Layer):
    """`ids != 0` as a bool `[batch, length]` mask (id 0 is padding)."""

    def call(self, inputs):
        return tf.not_equal(inputs, 0)


def _prunable_weights_of_cell(rnn):
    cell = rnn.cell
    return [cell.kernel, cell.recurrent_kernel]


@keras.saving.register_keras_serializable(package="tfnlp")
class CompressibleBidirectional(keras.layers.Bidirectional):
    """`Bidirectional` that tfmot can prune.

    tfmot refuses the `Bidirectional` wrapper itself, so this subclass implements its
    `PrunableLayer` interface (registered as a virtual subclass, see `_register_with_tfmot`)
    by exposing the kernels of the forward and backward LSTM cells: both directions are
    pruned, nothing is refused.
    """

    def get_prunable_weights(self):
        return _prunable_weights_of_cell(self.forward_layer) + _prunable_weights_of_cell(
            self.backward_layer
        )


# The score given to masked-out attention positions before the softmax. Keras adds -1e9,
# which full-integer quantization cannot represent: the softmax input's int8 scale became
# ~4e6 and every real score rounded to the same value (attention turned uniform). e^-30 is
# still nothing next to any real key's weight.
MASKED_SCORE = -30.0


@keras.saving.register_keras_serializable(package="tfnlp")
class QuantizableMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`MultiHeadAttention` that sets masked scores to `MASKED_SCORE` instead of adding -1e9."""

    def _masked_softmax(self, attention_scores, attention_mask=None):
        if attention_mask is not None:
            # [batch, queries, keys] -> [batch, 1 (heads), queries, keys], as Keras does.
            for _ in range(len(attention_scores.shape) - len(attention_mask.shape)):
                attention_mask = tf.expand_dims(
                    attention_mask, axis=-len(self._attention_axes) * 2 - 1
                )
            attention_scores = tf.where(
                tf.cast(attention_mask, tf.bool),
                attention_scores,
                tf.constant(MASKED_SCORE, attention_scores.dtype),
            )
        return self._softmax(attention_scores)


@keras.saving.register_keras_serializable(package="tfnlp")
class CompressibleTransformerEncoderBlock(TransformerEncoderBlock):
    """`TransformerEncoderBlock` whose attention and feed-forward kernels tfmot can prune.

    Rather than wrapping each sub-layer (they are created inside `build`, out of tfmot's
    reach), the block implements tfmot's `PrunableLayer` interface: the prunable weights are
    the query/key/value/output projection kernels and the two feed-forward kernels. Biases and
    LayerNorm parameters stay dense (they are tiny and pruning them hurts accuracy). Its
    attention masks with a bounded score, so that it survives full-integer quantization.
    """

    def get_prunable_weights(self):
        attention = self.attention
        projections = [
            attention._query_dense,
            attention._key_dense,
            attention._value_dense,
            attention._output_dense,
        ]
        return [p.kernel for p in projections] + [self.ff_hidden.kernel, self.ff_output.kernel]

    attention_class = QuantizableMultiHeadAttention


@keras.saving.register_keras_serializable(package="tfnlp")
class ReciprocalMeanPooling(MaskedMeanPooling):
    """Masked mean over time computed as sum × 1/count, with 1/count looked up, not divided.

    TFLite's int8 DIV kernel checks the divisor's raw int8 value for zero, and the quantized
    token count has raw value 0 at one length (~23 tokens for the tweets), so a full-integer
    model with Keras' `GlobalAveragePooling1D` crashes on those inputs, with or without
    XNNPACK. At a fixed length the reciprocals 1/0..1/L are a constant table (1/0 taken as
    0: an all-padding row pools to zeros), and GATHER + MUL quantize safely.
    """

    def call(self, inputs, mask=None):
        if mask is None:
            mask = tf.ones(tf.shape(inputs)[:2], tf.bool)
        total = tf.reduce_sum(inputs * tf.cast(mask, inputs.dtype)[..., None], axis=1)
        count = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        length = inputs.shape[1]
        if length is None:  # any length (the SavedModel): a plain division is fine there
            return tf.math.divide_no_nan(total, tf.cast(count, inputs.dtype)[:, None])
        table = tf.constant([0.0] + [1.0 / n for n in range(1, length + 1)], inputs.dtype)
        return total * tf.gather(table, count)[:, None]


def _register_with_tfmot() -> None:
    """Makes the two classes above instances of tfmot's `PrunableLayer` ABC."""
    import tensorflow_model_optimization as tfmot

    for cls in (CompressibleBidirectional, CompressibleTransformerEncoderBlock):
        if not issubclass(cls, tfmot.sparsity.keras.PrunableLayer):
            tfmot.sparsity.keras.PrunableLayer.register(cls)


def body_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after the `TextPreprocessor`, in call order (inputs and preprocessing dropped).

    Raises:
        ValueError: `model` is not a tfnlp text classifier (no `TextPreprocessor`).
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or not isinstance(layers[0], TextPreprocessor):
        raise ValueError(
            "`model` must be a tfnlp classifier that starts with a TextPreprocessor. "
            f"Received: model={model.name!r} with layers {[la.name for la in layers[:3]]}."
        )
    return layers[1:]


def takes_mask(layer: keras.layers.Layer) -> bool:
    """Whether the layer's `call` accepts a padding mask."""
    inner = getattr(layer, "layer", layer)  # tfmot wrappers pass the mask on via **kwargs
    return "mask" in inspect.signature(inner.call).parameters


def _compressible(layer: keras.layers.Layer) -> keras.layers.Layer:
    """An independent copy of `layer` (same config; compressible twins where needed).

    Always a copy: tfmot's wrappers change the layers they wrap (clustering swaps kernels,
    pruning masks them in place), so passes must never share layers with the trained model
    or with each other.
    """
    if type(layer) is keras.layers.Bidirectional:
        return CompressibleBidirectional.from_config(layer.get_config())
    if type(layer) is TransformerEncoderBlock:
        return CompressibleTransformerEncoderBlock.from_config(layer.get_config())
    if type(layer) in (keras.layers.GlobalAveragePooling1D, MaskedMeanPooling):
        return ReciprocalMeanPooling.from_config(layer.get_config())
    return type(layer).from_config(layer.get_config())


def build_id_model(model: keras.Model, sequence_length: int | None = None) -> keras.Model:
    """The classifier's layers after preprocessing, rebuilt on an int32 ids input.

    The returned model holds a copy of the trained weights in fresh layers (compressible
    twins for `Bidirectional` and the Transformer block, `ReciprocalMeanPooling` for the mean
    pooling) and carries the padding mask
    explicitly, so its logits equal the full model's on the same ids.

    Args:
        model: a trained tfnlp text classifier (strings in).
        sequence_length: the fixed input length, or None for any length.

    Returns:
        A functional `keras.Model` mapping int32 `[batch, sequence_length]` ids to logits.
    """
    _register_with_tfmot()
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    mask = PaddingMask(name="padding_mask")(ids)
    x = ids
    copies = []
    for layer in body_layers(model):
        new = _compressible(layer)
        x = new(x, mask=mask) if takes_mask(layer) else new(x)
        copies.append((layer, new))
    for old, new in copies:
        new.set_weights(old.get_weights())
    return keras.Model(ids, x, name=f"{model.name}_ids")


def text_model(preprocessor: TextPreprocessor, id_model: keras.Model, name: str) -> keras.Model:
    """Strings in, logits out again: the preprocessor followed by a (compressed) id model.

    The id model's layers are applied directly (not the id model as a nested layer, which
    `tf.saved_model.save` traced wrongly with the explicit mask), sharing their weights.
    """
    text = keras.Input(shape=(), dtype=tf.string, name="text")
    ids = preprocessor(text)
    mask = PaddingMask(name="padding_mask")(ids)
    x = ids
    for layer in id_model.layers:
        if isinstance(layer, (keras.layers.InputLayer, PaddingMask)):
            continue
        x = layer(x, mask=mask) if takes_mask(layer) else layer(x)
    return keras.Model(text, x, name=name)
