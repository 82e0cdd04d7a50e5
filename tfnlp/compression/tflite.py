"""TFLite conversion of id-level models: float32, float16, dynamic-range and full int8.

Each model is converted from a concrete function with a fixed `[batch, sequence_length]` int32
input: a tf-keras (Bi)LSTM with a dynamic batch does not convert ("tf.TensorListReserve op
requires element_shape to be static"). One file is written per served batch size (1 for
latency, 64 for throughput and evaluation).

The model takes token ids, not strings: tensorflow-text ops are not TFLite builtins. The
alternative, `SELECT_TF_OPS`, would pull the Flex delegate (several MB, not on every
platform) plus tensorflow-text's own custom-op registrations into every interpreter, and the
string ops would run outside XNNPACK and the int8 kernels anyway. Shipping the vocabulary and
a preprocessing spec beside the `.tflite` keeps the model pure builtins (small, fast,
delegate-friendly) and makes the size figures measure the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from tfnlp.backend import keras, tf

# Conversion modes: artifact name suffix -> what the converter does.
MODES = ("float32", "float16", "int8_dynamic", "int8_full", "int16x8")


# (id(model), batch, length) -> (model, concrete function); `clear_traces` empties it.
_TRACES: dict = {}


def clear_traces() -> None:
    """Forgets the cached traces (and so the models they hold)."""
    _TRACES.clear()


def concrete_function(id_model: keras.Model, batch_size: int, sequence_length: int):
    """The model's inference function traced for one fixed `[batch_size, sequence_length]`.

    Traces are cached per model and shape: converting one model in several modes traces it
    once (tracing a Keras LSTM is a large part of a conversion).
    """
    key = (id(id_model), batch_size, sequence_length)
    if key in _TRACES and _TRACES[key][0] is id_model:
        return _TRACES[key][1]

    @tf.function(
        input_signature=[tf.TensorSpec([batch_size, sequence_length], tf.int32, name="token_ids")]
    )
    def logits(token_ids):
        return {"logits": id_model(token_ids, training=False)}

    function = logits.get_concrete_function()
    _TRACES[key] = (id_model, function)
    return function


def _unrolled(layer):
    """A fresh copy of `layer`, with every LSTM in it unrolled (others copied as they are)."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.RNN):
        config["unroll"] = True
    elif isinstance(layer, keras.layers.Bidirectional):
        for key in ("layer", "backward_layer"):
            if config.get(key):
                config[key]["config"]["unroll"] = True
    return type(layer).from_config(config)


def unroll_recurrent_layers(id_model: keras.Model, sequence_length: int) -> keras.Model:
    """The same model (same weights) at a fixed length, its (Bi)LSTMs unrolled.

    A masked Keras LSTM converts to TFLite WHILE loops, which XNNPACK does not delegate and
    whose full-integer calibration crashed TFLite's calibrator here. At a fixed length the
    recurrence can be unrolled into straight-line ops instead. Models without recurrent
    layers are returned unchanged.
    """
    recurrent = (keras.layers.RNN, keras.layers.Bidirectional)
    if not any(isinstance(getattr(la, "layer", la), recurrent) for la in id_model.layers):
        return id_model
    import tensorflow_model_optimization as tfmot

    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    with tfmot.quantization.keras.quantize_scope():
        twin = keras.models.clone_model(id_model, input_tensors=ids, clone_function=_unrolled)
    twin.set_weights(id_model.get_weights())
    return twin


def convert(
    id_model: keras.Model,
    mode: str,
    *,
    batch_size: int,
    sequence_length: int,
    representative_ids: Callable[[], Iterable[np.ndarray]] | None = None,
    unroll: bool = False,
    strip_names: bool = False,
) -> tuple[bytes, dict]:
    """Converts an id-level model to a TFLite flatbuffer.

    Args:
        id_model: ids in, logits out (plain, stripped or QAT model).
        mode: "float32" (no optimisation), "float16" (weights in float16), "int8_dynamic"
            (int8 weights, float activations), "int8_full" (int8 weights and activations,
            calibrated on `representative_ids`), "int16x8" (int8 weights, int16 activations).
        unroll: unroll (Bi)LSTMs at the fixed length first (see `unroll_recurrent_layers`).
            A QAT model converted with "int8_dynamic" uses the ranges it learned.
        batch_size: the fixed batch of the input.
        sequence_length: the fixed number of token ids per example.
        representative_ids: a callable yielding int32 `[batch_size, sequence_length]` arrays
            from the training split (required by "int8_full" and "int16x8").
        strip_names: drop tensor/subgraph names (see `strip_tensor_names`).

    Returns:
        `(flatbuffer, details)`, details saying which op sets the converter was given.

    Raises:
        ValueError: an unknown mode or a missing representative dataset.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}.")
    if mode in ("int8_full", "int16x8") and representative_ids is None:
        raise ValueError(f"Mode {mode!r} needs `representative_ids` from the training split.")
    if unroll:
        id_model = unroll_recurrent_layers(id_model, sequence_length)
    function = concrete_function(id_model, batch_size, sequence_length)
    details = {
        "mode": mode,
        "batch_size": batch_size,
        "sequence_length": sequence_length,
        "unrolled": unroll,
        "names_stripped": strip_names,
    }
    flatbuffer = _convert(function, id_model, mode, representative_ids, details)
    return (strip_tensor_names(flatbuffer) if strip_names else flatbuffer), details


def strip_tensor_names(flatbuffer: bytes) -> bytes:
    """The model without tensor names (debug text; ~160 kB in an unrolled BiLSTM).

    The interpreter finds inputs and outputs by index or by signature, and signatures map
    their own names to tensor indices, so they keep working. (TFLite's `strip_strings` would
    also drop the signatures.)
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _convert(function, id_model, mode, representative_ids, details) -> bytes:
    """One conversion; integer modes fall back to float kernels for ops without int ones."""
    if mode not in ("int8_full", "int16x8"):
        return _converter(function, id_model, mode, representative_ids, None).convert()
    ops = (
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        if mode == "int16x8"
        else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    )
    details["supported_ops"] = ops.name
    try:
        return _converter(function, id_model, mode, representative_ids, [ops]).convert()
    except Exception as error:  # some ops have no integer kernel: let those stay in float
        details["strict_integer_failed"] = str(error).strip().splitlines()[0][:300]
    details["supported_ops"] = f"{ops.name}+TFLITE_BUILTINS"
    converter = _converter(
        function, id_model, mode, representative_ids, [ops, tf.lite.OpsSet.TFLITE_BUILTINS]
    )
    return converter.convert()


def _converter(function, id_model, mode, representative_ids, supported_ops):
    """A fresh converter per attempt (a converter that failed once cannot be reused)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], id_model)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if supported_ops is not None:
        converter.representative_dataset = lambda: ([ids] for ids in representative_ids())
        converter.target_spec.supported_ops = supported_ops
    return converter


def op_counts(flatbuffer: bytes) -> dict:
    """Operators in every subgraph (WHILE bodies included) and how often each occurs.

    Returns:
        {"subgraphs": n, "ops": {op name: count}}: from TFLite's model analyzer, the one
        public API that lists the ops inside control-flow subgraphs.
    """
    import contextlib
    import io
    import re

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        tf.lite.experimental.Analyzer.analyze(model_content=flatbuffer)
    counts: dict[str, int] = {}
    for name in re.findall(r"^\s+Op#\d+ ([A-Z0-9_]+)\(", text.getvalue(), flags=re.M):
        counts[name] = counts.get(name, 0) + 1
    subgraphs = len(re.findall(r"^Subgraph#\d+", text.getvalue(), flags=re.M))
    return {"subgraphs": subgraphs, "ops": dict(sorted(counts.items()))}
