"""The classifiers' serving module: raw strings in, probabilities and labels out.

`serving_default` takes a batch of raw UTF-8 strings and returns dense tensors only (what
TF-Serving's REST and gRPC Predict APIs expect). `classify` is the same model in TF-Serving's
Classify API form: serialized `tf.Example`s with a `text` feature in, `classes` and `scores`
out.
"""

from __future__ import annotations

from pathlib import Path

from tfnlp.backend import keras, tf
from tfnlp.export.module import ServingModule, Untracked, publish
from tfnlp.export.reference import CHECK_TEXTS
from tfnlp.export.warmup import classifier_warmup_records

SERVING_SIGNATURE = "serving_default"
CLASSIFY_SIGNATURE = "classify"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
# TF-Serving's Classify API requires the input key "inputs" (serialized tf.Examples).
CLASSIFY_INPUTS = "inputs"
TEXT_FEATURE = "text"


def text_preprocessor(model: keras.Model):
    """The model's `TextPreprocessor` layer.

    Raises:
        ValueError: the model has none.
    """
    from tfnlp.preprocessing.layer import TextPreprocessor

    for layer in model.layers:
        if isinstance(layer, TextPreprocessor):
            return layer
    raise ValueError(
        "`export.portable: true` needs a model with a `TextPreprocessor` layer. "
        f"Received: a model with layers {[type(layer).__name__ for layer in model.layers]}."
    )


def served_probabilities(model: keras.Model, inputs: tf.Tensor) -> tf.Tensor:
    """A classifier's `[batch, classes]` probabilities, in float32 whatever its precision."""
    return tf.nn.softmax(tf.cast(model(inputs, training=False), tf.float32), axis=-1)


class ClassifierServingModule(ServingModule):
    """A string-in classifier and its label names, with `serving_default` and `classify`.

    Args:
        model: a model mapping `[batch]` strings to `[batch, classes]` logits.
        labels: label names in id order.
        vocabulary: shipped as `assets/vocab.txt` when given.
        portable: replace the model's `TextPreprocessor` by `PortablePreprocessor` (TensorFlow
            core ops only) so no tensorflow-text op is in the graph.
    """

    method_names = {CLASSIFY_SIGNATURE: CLASSIFY_METHOD_NAME}

    def __init__(self, model: keras.Model, labels: list[str],
                 vocabulary: list[str] | None = None, portable: bool = False):
        super().__init__("tfnlp_serving", vocabulary, portable)
        # The trained model itself answers the reference texts (whatever the graph served).
        self._trained = Untracked(model)
        if portable:
            from tfnlp.export.portable import PortablePreprocessor

            layer = text_preprocessor(model)
            self.preprocessor = PortablePreprocessor(layer)
            # The layers after the preprocessor, as a model of their own: tracking the whole
            # model would save the tensorflow-text layer's functions too.
            self.model = keras.Model(layer.output, model.output, name=f"{model.name}_encoder")
        else:
            # The model's variables and its preprocessing layer (which owns the vocabulary
            # tables) are tracked, not the model: see `Untracked`. Measured on a tiny BiLSTM:
            # tf.saved_model.save took 32 s of a 43 s export, nearly all re-tracing each
            # LSTM's call for Keras's metadata, which TF-Serving never reads.
            self._model = Untracked(model)
            self.model_variables = list(model.variables)
            try:
                self.text_layer = text_preprocessor(model)
            except ValueError:  # preprocessing of another kind: track it all (slower)
                self.whole_model = model
        self._add_labels_and_one_trace(labels)

    def _add_labels_and_one_trace(self, labels: list[str]) -> None:
        """The label names, and the probabilities function both signatures call."""
        # A variable (not a constant) so loaders can read the names: `loaded.label_names`.
        self.label_names = tf.Variable(labels, dtype=tf.string, trainable=False, name="labels")
        self._labels = Untracked(list(labels))
        # One function, so the model is traced once for both signatures, not twice (a
        # BiLSTM's trace was ~2.5 s of the default job's export).
        self.traced_probabilities = tf.function(
            self.probabilities, input_signature=[tf.TensorSpec([None], tf.string)])

    def probabilities(self, text):
        if self.portable:
            return served_probabilities(self.model, self.preprocessor(text))
        return served_probabilities(self._model.value, text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        probabilities = self.traced_probabilities(text)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label_id": label_id,
            "label": tf.gather(self.label_names, label_id),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
    def classify(self, inputs):
        features = tf.io.parse_example(
            inputs, {TEXT_FEATURE: tf.io.FixedLenFeature([], tf.string, default_value="")}
        )
        scores = self.traced_probabilities(features[TEXT_FEATURE])
        classes = tf.tile(self.label_names[None, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    def signatures(self) -> dict:
        return {SERVING_SIGNATURE: self.serve, CLASSIFY_SIGNATURE: self.classify}

    def warmup_records(self, texts: list[str], model_name: str) -> list[bytes]:
        return classifier_warmup_records(texts, model_name, TEXT_FEATURE)

    def reference(self) -> dict:
        model = self._trained.value
        logits = model(tf.constant(CHECK_TEXTS), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()
        try:
            sequence_length = text_preprocessor(model).sequence_length
        except ValueError:
            sequence_length = None
        return {"kind": "classifier", "texts": list(CHECK_TEXTS),
                "probabilities": [[float(p) for p in row] for row in probabilities],
                "portable": self.portable, "sequence_length": sequence_length}


def export_saved_model(
    model: keras.Model,
    labels: list[str],
    export_root: str | Path,
    name: str,
    *,
    version: int | str = "auto",
    vocabulary: list[str] | None = None,
    keep: int | None = None,
    portable: bool = False,
    warmup_texts: list[str] | None = None,
    check_ops: bool = True,
) -> Path:
    """Publishes a string-in classifier as `<export_root>/<name>/<version>/` (see `publish`).

    Args:
        model: a model mapping `[batch]` strings to `[batch, classes]` logits.
        labels: label names in id order.
        vocabulary: written as `assets/vocab.txt` when given.
        portable: preprocessing from TensorFlow core ops only (see `tfnlp.export.portable`).
        export_root, name, version, keep, warmup_texts, check_ops: as for `publish`.

    Returns:
        The path of the new version directory.
    """
    module = ClassifierServingModule(model, labels, vocabulary, portable=portable)
    return publish(module, export_root, name, version=version, keep=keep,
                   warmup_texts=warmup_texts, check_ops=check_ops)
