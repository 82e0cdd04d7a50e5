"""tf-keras's cuDNN LSTM/GRU twins: skipped in traces on a host with no GPU, kept in exports."""

import numpy as np
import pytest

from tfnlp.backend import cudnn_twins_for_serving, keras, tf

pytestmark = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                                reason="a GPU host registers the twins (tf-keras's behaviour)")


def traced_function_names(layer_class) -> list[str]:
    """The functions in the graph of one traced gradient step of a recurrent layer."""
    layer = layer_class(4)

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            outputs = layer(inputs)
        return tape.gradient(outputs, layer.trainable_variables)

    graph = step.get_concrete_function(tf.TensorSpec((2, 5, 3))).graph
    return [f.signature.name for f in graph.as_graph_def().library.function]


@pytest.mark.parametrize("layer_class", [keras.layers.LSTM, keras.layers.GRU])
def test_a_trace_on_a_cpu_host_skips_the_cudnn_twin(layer_class):
    names = traced_function_names(layer_class)
    assert any("standard_" in name for name in names), names  # the kernel that runs
    assert not any("gpu_" in name for name in names), names


@pytest.mark.parametrize("layer_class", [keras.layers.LSTM, keras.layers.GRU])
def test_cudnn_twins_for_serving_registers_the_twin(layer_class):
    with cudnn_twins_for_serving():
        names = traced_function_names(layer_class)
    assert any("gpu_" in name and "with_fallback" in name for name in names), names


def test_skipping_the_twin_changes_no_value():
    inputs = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    layer = keras.layers.LSTM(4)
    layer.build((None, 5, 3))
    outputs = tf.function(layer)(inputs)
    with cudnn_twins_for_serving():
        kept = tf.function(layer)(inputs)
    np.testing.assert_array_equal(outputs.numpy(), kept.numpy())
