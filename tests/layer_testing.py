"""One harness for preprocessing layers (keras-hub's `run_preprocessing_layer_test`).

A string-in layer must give the same output eagerly, inside a `tf.function`, in a `tf.data`
map, after a `get_config` → `from_config` round trip and after a SavedModel round trip through a
`tf.Module` with a `[None] tf.string` signature (what TF-Serving calls).
"""

from __future__ import annotations

import tempfile

import numpy as np

from tfnlp.backend import tf


def run_preprocessing_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_data,
    expected_output=None,
    expected_output_dtype=None,
):
    """Builds `layer_cls(**init_kwargs)` and checks it on `input_data` (a 1-D list of strings).

    Args:
        layer_cls: the layer class.
        init_kwargs: its constructor arguments.
        input_data: the strings to call it on.
        expected_output: the exact output (nested lists; rows may be ragged), if known.
        expected_output_dtype: the output dtype, if known.

    Returns:
        The layer and its eager output, for checks of the layer's own.
    """
    layer = layer_cls(**init_kwargs)
    texts = tf.constant(input_data, tf.string)
    output = layer(texts)
    if expected_output is not None:
        assert _values(output) == _values(expected_output)
    if expected_output_dtype is not None:
        assert output.dtype == expected_output_dtype, (output.dtype, expected_output_dtype)

    serve = tf.function(lambda t: layer(t), input_signature=[tf.TensorSpec([None], tf.string)])
    traced = serve(texts)
    _assert_same(traced, output, "inside a tf.function")
    static = serve.get_concrete_function().structured_outputs
    assert static.dtype == output.dtype
    assert static.shape.is_compatible_with(output.shape), (static.shape, output.shape)

    # One batch of everything, so a layer that pads to the batch's longest row compares equal.
    mapped = tf.data.Dataset.from_tensor_slices(texts).batch(len(input_data)).map(layer)
    _assert_same(next(iter(mapped)), output, "in a tf.data map")

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    _assert_same(clone(texts), output, "after get_config/from_config")

    module = tf.Module()
    module.layer = layer
    module.serve = serve
    with tempfile.TemporaryDirectory() as directory:
        tf.saved_model.save(module, directory)
        loaded = tf.saved_model.load(directory)
        _assert_same(loaded.serve(texts), output, "after a SavedModel round trip")
    return layer, output


def _values(tensor):
    """Nested Python lists of a dense or ragged tensor (or of nested lists / arrays)."""
    if isinstance(tensor, tf.RaggedTensor):
        return tensor.to_list()
    if isinstance(tensor, list):
        return [_values(item) for item in tensor]
    return np.asarray(tensor).tolist()


def _assert_same(actual, expected, where: str) -> None:
    assert isinstance(actual, tf.RaggedTensor) == isinstance(expected, tf.RaggedTensor), where
    assert actual.dtype == expected.dtype, (where, actual.dtype, expected.dtype)
    assert _values(actual) == _values(expected), where
