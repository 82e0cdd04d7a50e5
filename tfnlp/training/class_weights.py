"""`train.class_weight`: per-class loss weights, applied as per-example weights in tf.data.

Keras's `fit(class_weight=...)` does not work with every input tfnlp feeds it (a
`DatasetCreator` under parameter-server training, DTensor datasets, the pipeline-parallel
step), so the weights are looked up from each training example's label id in the input
pipeline instead, multiplying its `data.weight_column` weight where there is one. The loss then
is Keras's: the batch mean of weight × per-example loss, exactly what `class_weight` gives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from tfnlp.backend import tf
from tfnlp.config.schema import FieldError

logger = logging.getLogger("tfnlp")

BALANCED = "balanced"


def class_weights(setting, labels: Sequence[str], counts: Sequence[int]) -> np.ndarray | None:
    """The weight of each label id under `train.class_weight`, or None when it is off.

    Args:
        setting: None, "balanced" (n_train / (n_classes * count), as scikit-learn's
            `compute_class_weight`), or {label name: weight} (labels not named weigh 1).
        labels: the label names in id order.
        counts: training examples per label id.

    Returns:
        A float32 array `[len(labels)]`, or None.

    Raises:
        FieldError: the mapping names a label the training data does not have.

    Example:
        >>> class_weights("balanced", ["negative", "positive"], [3, 1]).tolist()
        [0.666..., 2.0]
        >>> class_weights({"positive": 2.5}, ["negative", "positive"], [3, 1]).tolist()
        [1.0, 2.5]
    """
    if setting is None:
        return None
    if setting == BALANCED:
        counts = np.asarray(counts, dtype=np.float64)
        # A class absent from the training split never reaches the loss: any weight will do.
        balanced = counts.sum() / (len(labels) * np.maximum(counts, 1))
        return np.where(counts > 0, balanced, 1.0).astype(np.float32)
    names = [str(label) for label in labels]  # YAML keys are strings; TFRecord labels may not be
    unknown = sorted(set(setting) - set(names))
    if unknown:
        raise FieldError(
            "train.class_weight", f"a mapping of the training data's labels "
            f"({', '.join(map(repr, names))}) to weights; {unknown[0]!r} is not one of them",
            setting)
    return np.array([setting.get(name, 1.0) for name in names], dtype=np.float32)


def describe(weights: np.ndarray | None, labels: Sequence[str]) -> dict[str, float] | None:
    """{label: weight} for the log and metrics.json (None when off)."""
    if weights is None:
        return None
    return {str(label): float(weight) for label, weight in zip(labels, weights)}


def log_class_weights(weights: np.ndarray | None, labels: Sequence[str], setting) -> None:
    """One line: the weight of every class, and the setting they came from."""
    if weights is not None:
        shown = ", ".join(f"{label} {weight:.3f}" for label, weight in zip(labels, weights))
        logger.info("class weights: %s (train.class_weight%s)", shown,
                    ": balanced" if setting == BALANCED else "")


def example_weights(weights: np.ndarray, label_ids: tf.Tensor,
                    weight: tf.Tensor | None = None) -> tf.Tensor:
    """The per-example weights of a batch: each label's class weight (times `weight`).

    Example:
        >>> example_weights(np.array([0.5, 2.0]), tf.constant([1, 0, 1]),
        ...                 tf.constant([1.0, 1.0, 0.5])).numpy().tolist()
        [2.0, 0.5, 1.0]
    """
    looked_up = tf.gather(tf.constant(weights, tf.float32), label_ids)
    return looked_up if weight is None else looked_up * tf.cast(weight, tf.float32)
