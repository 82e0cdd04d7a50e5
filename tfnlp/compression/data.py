"""The trained run's splits as fixed-length token ids: built once, shared by every pass."""

from __future__ import annotations

import numpy as np

from tfnlp.backend import tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.data import encode_labels
from tfnlp.data.splits import Splits
from tfnlp.training.class_weights import class_weights


def token_ids(preprocessor, texts: list[str], sequence_length: int, batch: int = 512):
    """Token ids of `texts`, zero-padded to exactly `sequence_length` (what TFLite takes).

    Returns:
        An int32 array `[len(texts), sequence_length]`.
    """
    out = np.zeros((len(texts), sequence_length), np.int32)
    for start in range(0, len(texts), batch):
        ids = preprocessor(tf.constant(texts[start : start + batch])).numpy()
        out[start : start + len(ids), : ids.shape[1]] = ids
    return out


def training_weights(config: PipelineConfig, splits: Splits, labels: list[str],
                     label_ids: np.ndarray) -> np.ndarray | None:
    """Each training example's weight as the run trained with it: its `data.weight_column`
    weight times its class weight (`train.class_weight`); None when neither is set."""
    weights = splits.train.weights
    weights = np.asarray(weights, np.float32) if weights is not None else None
    per_class = class_weights(config.train.class_weight, labels,
                              np.bincount(label_ids, minlength=len(labels)))
    if per_class is None:
        return weights
    return per_class[label_ids] if weights is None else per_class[label_ids] * weights


class CompressionData:
    """Ids and one-hot labels of a run's splits, for fine-tuning, calibration and measuring.

    Args:
        config: the run's own pipeline (its sequence length, batch size and seed).
        splits: the run's train/validation/test split.
        labels: the label names, in id order.
        preprocessor: the run's `TextPreprocessor`.
    """

    def __init__(self, config: PipelineConfig, splits: Splits, labels: list[str], preprocessor):
        length = config.preprocessing.sequence_length
        self.labels = labels
        self.train_ids = token_ids(preprocessor, splits.train.texts, length)
        self.validation_ids = token_ids(preprocessor, splits.validation.texts, length)
        self.test_ids = token_ids(preprocessor, splits.test.texts, length)
        self.test_texts = list(splits.test.texts)
        self.y_train = encode_labels(splits.train, labels)
        self.y_validation = encode_labels(splits.validation, labels)
        self.y_test = encode_labels(splits.test, labels)
        self.train_weights = training_weights(config, splits, labels, self.y_train)
        self.batch_size = config.train.batch_size
        self.seed = config.seed

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_ids) // self.batch_size)

    def train(self) -> tf.data.Dataset:
        """Shuffled (seeded) training batches: ids, one-hot labels and, if any, weights."""
        tensors = (self.train_ids, tf.one_hot(self.y_train, len(self.labels)))
        if self.train_weights is not None:
            tensors += (self.train_weights,)
        return (
            tf.data.Dataset.from_tensor_slices(tensors)
            .shuffle(len(self.train_ids), seed=self.seed)
            .batch(self.batch_size)
        )

    def validation(self) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(
            (self.validation_ids, tf.one_hot(self.y_validation, len(self.labels)))
        ).batch(self.batch_size)

    def representative(self, count: int, batch_size: int):
        """Calibration batches drawn (seeded) from the training split.

        Returns:
            A callable yielding int32 `[batch_size, sequence_length]` arrays (TFLite's
            `representative_dataset` takes a fresh generator per conversion).
        """
        rng = np.random.default_rng(self.seed)
        picked = self.train_ids[rng.permutation(len(self.train_ids))[:count]]

        def batches():
            for start in range(0, len(picked) - batch_size + 1, batch_size):
                yield picked[start : start + batch_size]

        return batches
