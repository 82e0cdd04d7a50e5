"""Keras text classifiers and the name → builder registry."""

from tfnlp.models.classifiers import build_lstm_classifier, build_transformer_classifier
from tfnlp.models.layers import PositionEmbedding, TransformerEncoderBlock
from tfnlp.models.registry import MODEL_NAMES, build_model

__all__ = [
    "MODEL_NAMES",
    "PositionEmbedding",
    "TransformerEncoderBlock",
    "build_lstm_classifier",
    "build_model",
    "build_transformer_classifier",
]
