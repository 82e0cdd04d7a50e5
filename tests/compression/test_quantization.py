import numpy as np
import pytest

from tfnlp.backend import keras
from tfnlp.compression import clustering, interpreter, quantization, tflite
from tfnlp.compression.id_model import build_id_model


def _fit_once(model, ids):
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    targets = keras.utils.to_categorical(np.arange(len(ids)) % 3, 3)
    model.fit(ids, targets, epochs=1, verbose=0)


def test_qat_annotates_supported_layers_and_converts_to_int8(tiny_ids):
    _, model, ids, _, length = tiny_ids
    qat, details = quantization.quantize_aware_model(build_id_model(model))
    assert details["quantized"] == ["logits"]
    assert set(details["float"]) == {"embedding", "bilstm_0"}  # listed with a reason each
    assert any(type(layer).__name__.startswith("QuantizeWrapper") for layer in qat.layers)
    _fit_once(qat, ids)
    flatbuffer, _ = tflite.convert(qat, "int8_dynamic", batch_size=1, sequence_length=length)
    assert interpreter.tensor_dtypes(flatbuffer).get("int8", 0) > 0
    predictions = interpreter.TFLiteClassifier(flatbuffer).predict_ids(ids)
    assert predictions.shape == (len(ids),) and set(predictions) <= {0, 1, 2}


def test_clustering_leaves_few_distinct_values(tiny_ids):
    _, model, ids, _, _ = tiny_ids
    clustered, details = clustering.cluster_id_model(build_id_model(model), number_of_clusters=4)
    assert "embedding" in details["clustered"] and "logits" in details["clustered"]
    _fit_once(clustered, ids)
    stripped = clustering.strip_clustering(clustered)
    counts = clustering.distinct_values(stripped, details["clustered"])
    assert counts and all(count <= 4 for count in counts.values())
    with pytest.raises(ValueError, match="number_of_clusters"):
        clustering.cluster_id_model(build_id_model(model), number_of_clusters=1)
