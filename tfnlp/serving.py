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


def predict_texts(loaded, texts: list[str]) -> list[dict]:
    """Label and per-label probabilities for each text, through `serving_default`."""
    from tfnlp.backend import tf

    outputs = loaded.signatures[SERVING_SIGNATURE](text=tf.constant(list(texts), tf.string))
    names = [name.decode("utf-8") for name in loaded.label_names.numpy()]
    return [
        {
            "text": text,
            "label": label.decode("utf-8"),
            "probabilities": {n: round(float(p), 6) for n, p in zip(names, probabilities)},
        }
        for text, label, probabilities in zip(
            texts, outputs["label"].numpy(), outputs["probabilities"].numpy()
        )
    ]
