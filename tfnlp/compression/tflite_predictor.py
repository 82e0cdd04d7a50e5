"""Classifying raw texts with a compressed `.tflite` model (what `tfnlp predict` does for one).

The `.tflite` takes token ids; the vocabulary and `preprocessing.json` written beside it by
`tfnlp compress` (one format: `spec.TFLiteSpec`) rebuild the very `TextPreprocessor` the model
was trained with, so the ids match training exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfnlp.compression.spec import TFLiteSpec


def is_tflite_path(path: str | Path) -> bool:
    """A `.tflite` file, or a directory holding `model.tflite` and its preprocessing spec."""
    path = Path(path)
    return path.suffix == ".tflite" or (path / "model.tflite").is_file()


class TFLitePredictor:
    """A `.tflite` classifier plus its preprocessing: strings in, labels and probabilities out.

    Args:
        path: the `.tflite` file, or its directory (then `model.tflite` is used).

    Raises:
        FileNotFoundError: the model, `vocab.txt` or `preprocessing.json` is missing.
        ValueError: `preprocessing.json` is not in the `tfnlp-tflite-1` format.
    """

    def __init__(self, path: str | Path):
        from tfnlp.compression.interpreter import TFLiteClassifier

        path = Path(path)
        model_file = path if path.suffix == ".tflite" else path / "model.tflite"
        if not model_file.is_file():
            raise FileNotFoundError(
                f"{model_file}: missing; pass a .tflite file or a `tfnlp compress` artifact "
                "directory holding model.tflite."
            )
        spec = TFLiteSpec.read(model_file.parent)
        self.labels = spec.labels
        self.preprocessor = spec.text_preprocessor()
        self.classifier = TFLiteClassifier(model_file.read_bytes())

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Softmax probabilities `[len(texts), labels]`."""
        from tfnlp.backend import tf

        ids = np.zeros((len(texts), self.classifier.sequence_length), np.int32)
        if texts:
            tokens = self.preprocessor(tf.constant(list(texts))).numpy()
            ids[:, : tokens.shape[1]] = tokens
        rows = []
        for start in range(0, len(texts), self.classifier.batch_size):
            chunk = ids[start : start + self.classifier.batch_size]
            padded = np.zeros((self.classifier.batch_size, ids.shape[1]), np.int32)
            padded[: len(chunk)] = chunk
            rows.append(self.classifier.logits(padded)[: len(chunk)])
        logits = np.concatenate(rows) if rows else np.zeros([0, len(self.labels)], np.float32)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def predict_texts(self, texts: list[str]) -> list[dict]:
        """The same rows as an export's: text, label, probabilities."""
        from tfnlp.serving import prediction_rows

        return prediction_rows(texts, self.probabilities(texts), self.labels)
