"""Classification metrics with scikit-learn: accuracy, macro-F1, per-class P/R/F1, confusion."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true, y_pred, labels: list[str]) -> dict:
    """Metrics of predicted label ids against true ones, as JSON-ready data.

    Args:
        y_true: the true label ids.
        y_pred: the predicted label ids.
        labels: label names in id order.

    Returns:
        {"examples", "accuracy", "macro_f1", "per_class": {label: {precision, recall, f1,
        support}}, "labels", "confusion_matrix": rows = true label, columns = predicted label}.

    Example:
        >>> metrics = classification_metrics([0, 1, 1], [0, 1, 0], ["negative", "positive"])
        >>> round(metrics["accuracy"], 3), metrics["confusion_matrix"]
        (0.667, [[1, 0], [1, 1]])
        >>> metrics["per_class"]["positive"]
        {'precision': 1.0, 'recall': 0.5, 'f1': 0.666..., 'support': 2}
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0
    )
    return {
        "examples": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def majority_class_accuracy(y_train, y_test) -> float:
    """Accuracy of always predicting the most frequent training label.

    Example:
        >>> majority_class_accuracy([0, 1, 1], [1, 0, 1, 1])
        0.75
    """
    majority = np.bincount(np.asarray(y_train)).argmax()
    return float(np.mean(np.asarray(y_test) == majority))
