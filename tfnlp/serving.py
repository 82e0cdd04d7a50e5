"""Loading an exported SavedModel and classifying texts with it (what `tfnlp predict` does)."""

from __future__ import annotations

from pathlib import Path

from tfnlp.export.classification import SERVING_SIGNATURE
from tfnlp.export.versions import latest_version


def load_exported(model_dir: str | Path):
    """Loads the newest version under `model_dir` (or that version) with `tf.saved_model.load`.

    Only TensorFlow and tensorflow-text are needed: no tfnlp code runs inside the model.
    """
    import tensorflow_text  # noqa: F401  (registers the text ops the graph uses)

    from tfnlp.backend import tf

    return tf.saved_model.load(str(latest_version(model_dir)))


def prediction_rows(texts: list[str], probabilities, labels: list[str]) -> list[dict]:
    """`{"text", "label", "probabilities": {label: p}}` per text (what `tfnlp predict` prints).

    Example:
        >>> prediction_rows(["hi"], [[0.25, 0.75]], ["neg", "pos"])
        [{'text': 'hi', 'label': 'pos', 'probabilities': {'neg': 0.25, 'pos': 0.75}}]
    """
    rows = []
    for text, row in zip(texts, probabilities):
        best = max(range(len(labels)), key=lambda i: row[i])
        rows.append({"text": text, "label": labels[best],
                     "probabilities": {n: round(float(p), 6) for n, p in zip(labels, row)}})
    return rows


class ExportPredictor:
    """An export's `serving_default` as `labels` + `probabilities(texts)`.

    Args:
        model_dir: `saved_models/<name>` (newest version) or a version directory.
    """

    def __init__(self, model_dir: str | Path):
        self.loaded = load_exported(model_dir)
        if not hasattr(self.loaded, "label_names"):
            raise ValueError(f"{model_dir} is not a classifier export (it has no label names); "
                             "`tfnlp predict` classifies texts, `tfnlp generate` continues them.")
        self.labels = [name.decode("utf-8") for name in self.loaded.label_names.numpy()]
        self._serve = self.loaded.signatures[SERVING_SIGNATURE]

    def probabilities(self, texts: list[str]):
        """Softmax probabilities `[len(texts), labels]` (numpy)."""
        from tfnlp.backend import tf

        return self._serve(text=tf.constant(list(texts), tf.string))["probabilities"].numpy()

    def predict_texts(self, texts: list[str]) -> list[dict]:
        return prediction_rows(texts, self.probabilities(texts), self.labels)
