"""Training-input choices: length bucketing, and tokenizing in the tf.data map.

By default the model tokenizes raw strings itself (what is trained is what is served). With
`preprocessing.in_dataset: true` the same `TextPreprocessor` runs in a parallel `tf.data` map
instead, overlapping tokenization with the training step, and training fits `ids_model(model)`:
the same layers (so the same weights) minus the preprocessor. The full string-in model is still
the one evaluated and exported.
"""

from __future__ import annotations

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.preprocessing import TextPreprocessor

# Recurrent encoders run one step per padded position, so short batches pay off most.
_BUCKETED_BY_DEFAULT = ("lstm", "bilstm")


def use_length_bucketing(config: PipelineConfig) -> bool:
    """`train.length_bucketing`, with None meaning "on for recurrent models"; never under
    DTensor, whose datasets have one static shape."""
    if config.distribute.strategy == "dtensor":
        return False
    if config.train.length_bucketing is None:
        return config.model.name in _BUCKETED_BY_DEFAULT
    return config.train.length_bucketing


def ids_model(model: keras.Model) -> keras.Model:
    """The model from token ids on: its layers after the `TextPreprocessor`, weights shared.

    Args:
        model: a functional string-in model whose layers form a chain (all tfnlp classifiers).

    Returns:
        A functional model taking int32 ids `[batch, length]` (0 = padding) to the same outputs.

    Raises:
        ValueError: the model has no `TextPreprocessor` or its layers are not a simple chain.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or not isinstance(layers[0], TextPreprocessor):
        raise ValueError(
            "`preprocessing.in_dataset` needs a model whose first layer is a TextPreprocessor. "
            f"Received: model {model.name!r} whose first layer is "
            f"{layers[0].name if layers else None!r}."
        )
    for previous, layer in zip(layers, layers[1:]):
        # The newest node: the layers may also serve an earlier model (a plan built first).
        if layer.get_input_at(-1) is not previous.get_output_at(-1):
            raise ValueError(
                "`preprocessing.in_dataset` needs a model whose layers form a chain. "
                f"Received: layer {layer.name!r} does not take {previous.name!r}'s output; "
                "set `preprocessing.in_dataset: false`."
            )
    ids = keras.Input(shape=(layers[0].static_length,), dtype=tf.int32, name="token_ids")
    outputs = ids
    for layer in layers[1:]:
        outputs = layer(outputs)
    return keras.Model(ids, outputs, name=f"{model.name}_from_ids")


def tokenize_in_dataset(dataset: tf.data.Dataset, preprocessor: TextPreprocessor):
    """Maps batches of (texts, *rest) to (ids, *rest) in parallel, with the model's layer.

    The ids are exactly the ones the model would compute (same layer, same batch), padded to
    the batch's longest row.
    """

    def tokenize(texts, *rest):
        return (preprocessor(texts), *rest)

    return dataset.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
