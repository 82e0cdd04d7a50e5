"""Quantization-aware training with tfmot: annotate what it supports, then `quantize_apply`.

`quantize_model` cannot take these models whole: its input `QuantizeLayer` cannot take int
token ids, and Embedding, LSTM and MultiHeadAttention have no default `QuantizeConfig`. So
QAT here annotates the layers tfmot's default 8-bit scheme supports (the Dense layers reachable
at the model's top level) and leaves the rest in float; the TFLite converter then quantizes
the annotated layers with the ranges learned in training and the rest with dynamic range.
The layers quantized and the ones left out (with why) are returned for the report.
"""

from __future__ import annotations

from tfnlp.backend import keras


def quantize_aware_model(id_model: keras.Model, preserve_sparsity: bool = False):
    """An id-level model with fake-quantization on every layer tfmot's 8-bit scheme supports.

    Args:
        id_model: ids in, logits out (float, or stripped after pruning).
        preserve_sparsity: use tfmot's pruning-preserving scheme
            (`Default8BitPrunePreserveQuantizeScheme`): fine-tuning keeps the zeros.

    Returns:
        `(model, details)` with details {"quantized": [...], "float": {layer: reason}, "scheme"}.

    Raises:
        ValueError: nothing in the model can be quantized.
    """
    import tensorflow_model_optimization as tfmot

    supports = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry().supports
    quantized, left_float = [], {}

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer) or not layer.weights:
            return layer
        if supports(layer):
            quantized.append(layer.name)
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        left_float[layer.name] = (
            f"{type(layer).__name__} has no QuantizeConfig in tfmot's default 8-bit scheme; "
            "the TFLite converter quantizes its weights with dynamic range"
        )
        return layer

    annotated = keras.models.clone_model(id_model, clone_function=annotate)
    if not quantized:
        raise ValueError(f"No layer of {id_model.name!r} is supported by tfmot's 8-bit QAT.")
    scheme = None
    scheme_name = "Default8BitQuantizeScheme"
    if preserve_sparsity:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        scheme_name = "Default8BitPrunePreserveQuantizeScheme"
    with tfmot.quantization.keras.quantize_scope():
        model = (
            tfmot.quantization.keras.quantize_apply(annotated, scheme)
            if scheme
            else tfmot.quantization.keras.quantize_apply(annotated)
        )
    return model, {"quantized": quantized, "float": left_float, "scheme": scheme_name}
