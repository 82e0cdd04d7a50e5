"""`assets.extra/tf_serving_warmup_requests`: requests TF-Serving replays before serving.

TF-Serving runs every record of this TFRecord file (a `PredictionLog` each) when it loads a
version, so lazy initialisation (graph optimisation, lookup tables, the first regex compile)
happens before the first real request.
"""

from __future__ import annotations

from pathlib import Path

from tfnlp.backend import tf

WARMUP_FILE = "tf_serving_warmup_requests"
# A handful of texts is enough: each record warms the whole graph once.
MAX_WARMUP_TEXTS = 8


def predict_log(model_name: str, signature: str, inputs: dict) -> bytes:
    """A serialized `PredictionLog` holding one Predict request of `inputs` (name -> values).

    Each value is turned into a tensor proto as given (a list of strings, a list of ints…).
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
    )
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    ).SerializeToString()


def classifier_warmup_records(
    texts: list[str], model_name: str, text_feature: str = "text"
) -> list[bytes]:
    """Serialized `PredictionLog`s: a Predict request and a Classify request of `texts`.

    Args:
        texts: a few real texts (the pipeline's validation split).
        model_name: the TF-Serving model name (informational: the server warms the version
            it is loading whatever the name).
        text_feature: the `tf.Example` feature the `classify` signature reads.

    Returns:
        The serialized records, Predict first.

    Raises:
        ValueError: `texts` is empty.
    """
    from tensorflow_serving.apis import (
        classification_pb2,
        input_pb2,
        model_pb2,
        prediction_log_pb2,
    )

    texts = warmup_sample(texts)
    examples = [_text_example(text, text_feature) for text in texts]
    classify = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name="classify"),
        input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples)),
    )
    return [
        predict_log(model_name, "serving_default", {"text": texts}),
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classify)
        ).SerializeToString(),
    ]


def warmup_sample(texts: list[str]) -> list[str]:
    """The first `MAX_WARMUP_TEXTS` texts.

    Raises:
        ValueError: `texts` is empty.
    """
    texts = list(texts)[:MAX_WARMUP_TEXTS]
    if not texts:
        raise ValueError("`warmup_texts` must hold at least one text. Received: warmup_texts=[].")
    return texts


def write_warmup_records(saved_model_dir: str | Path, records: list[bytes]) -> Path:
    """Writes `<saved_model_dir>/assets.extra/tf_serving_warmup_requests` and returns its path."""
    path = Path(saved_model_dir) / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def read_warmup_requests(saved_model_dir: str | Path) -> list:
    """The `PredictionLog`s of an export's warm-up file (empty when there is none)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(saved_model_dir) / "assets.extra" / WARMUP_FILE
    if not path.is_file():
        return []
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]


def _text_example(text: str, feature: str):
    return tf.train.Example(features=tf.train.Features(feature={
        feature: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))
    }))
