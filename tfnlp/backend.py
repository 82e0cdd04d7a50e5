"""The one place that imports Keras.

tfnlp uses tf-keras (Keras 2) everywhere: tensorflow-model-optimization 0.8 refuses Keras 3
objects, and TF Model Garden made the same choice. Importing `tf_keras` directly (rather than
`tf.keras`) means behaviour never depends on `TF_USE_LEGACY_KERAS` or on import order.

Usage: `from tfnlp.backend import keras, tf`.
"""

import contextlib
import os
import sys

# Quieten TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Without it `import tensorflow` also imports Keras 3 (and scikit-learn through its wrappers):
# 2.5-3.5 s of every tfnlp process's start-up, for a Keras tfnlp never uses. It also makes
# `tf.keras` the same tf-keras as ours, so a user's `tf.keras` layer fits a tfnlp model.
# The processes tfnlp starts (serve-check's fresh ones) inherit it and start faster too.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_TENSORFLOW_CAME_FIRST = "tensorflow" in sys.modules  # see CORE_OPS
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["cudnn_twins_for_serving", "keras", "tf"]


def op_names(serialized_op_list: bytes) -> frozenset[str]:
    """The op names in a serialized `OpList` (what TensorFlow's C API hands out)."""
    from tensorflow.core.framework import op_def_pb2

    return frozenset(op.name for op in op_def_pb2.OpList.FromString(serialized_op_list).op)


def registered_op_names() -> frozenset[str]:
    """The names of every op registered in this process so far."""
    from tensorflow.python.client import pywrap_tf_session

    return op_names(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))


# The ops TensorFlow alone provides (its import loads a few op libraries of its own), noted in
# ~30 ms before tensorflow-text or any other op library adds more: `tfnlp.export.ops` sorts an
# export's ops by it without starting a second TensorFlow (~8 s). None when TensorFlow was
# imported before this module: a library may have loaded since, so a fresh process lists them.
CORE_OPS: frozenset[str] | None = None if _TENSORFLOW_CAME_FIRST else registered_op_names()


# tf-keras traces a cuDNN twin of every LSTM and GRU call (and the twin's gradient) and adds it
# to the graph, so that Grappler can swap it in where the layer runs on a GPU. On a host without
# one it can never run, yet it was half of every trace: a 2-layer BiLSTM's first training step
# 8.9 -> 4.2 s, its first test and predict steps 3.3 -> 0.8 s each, the steps themselves as
# fast. So it is skipped there, except inside `cudnn_twins_for_serving()`: a SavedModel leaves
# this host and may be served on a GPU.
from tf_keras.src.layers.rnn import gru_lstm_utils  # noqa: E402

_register_twin = gru_lstm_utils.function_register
_serving_traces = 0


def _register_twin_where_usable(func, *args, **kwargs):
    if _serving_traces:
        # Grappler swaps a call to the standard inference function for the inference function
        # of the same `api_implements` that prefers the device; gradients only matter to
        # training graphs. Leaving out the twins' gradients took ~3 s off every export.
        func.get_concrete_function(*args, **kwargs).add_to_graph()
    elif tf.config.list_logical_devices("GPU"):
        _register_twin(func, *args, **kwargs)
    return None  # tf-keras ignores the registered function's return value


gru_lstm_utils.function_register = _register_twin_where_usable


@contextlib.contextmanager
def cudnn_twins_for_serving():
    """Traces inside carry tf-keras's cuDNN LSTM/GRU twins (inference functions only, no
    gradients), even on a host with no GPU: for the signatures of a SavedModel."""
    global _serving_traces
    _serving_traces += 1
    try:
        yield
    finally:
        _serving_traces -= 1
