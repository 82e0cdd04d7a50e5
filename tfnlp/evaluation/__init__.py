"""Metrics, the TF-IDF baseline and the plots of a run."""

from tfnlp.evaluation.baseline import tfidf_logreg_baseline
from tfnlp.evaluation.metrics import classification_metrics, majority_class_accuracy
from tfnlp.evaluation.plots import plot_confusion_matrix, plot_training_curves

__all__ = [
    "classification_metrics",
    "majority_class_accuracy",
    "plot_confusion_matrix",
    "plot_training_curves",
    "tfidf_logreg_baseline",
]
