"""Model name → builder, driven by a pipeline's `model:` section."""

from __future__ import annotations

from tfnlp.backend import keras
from tfnlp.config.schema import ModelConfig
from tfnlp.models.classifiers import build_lstm_classifier, build_transformer_classifier
from tfnlp.preprocessing.layer import TextPreprocessor

MODEL_NAMES = ("lstm", "bilstm", "transformer")


def build_model(
    config: ModelConfig, preprocessor: TextPreprocessor, num_classes: int,
    embeddings_initializer="uniform",
) -> keras.Model:
    """Builds the classifier named by `config.name` with the config's sizes.

    `embeddings_initializer` starts the embedding, e.g. `PretrainedEmbeddings` for
    `config.pretrained_embeddings` (the caller reads the vectors only when training).

    Raises:
        ValueError: an unknown model name.
    """
    if config.name in ("lstm", "bilstm"):
        return build_lstm_classifier(
            preprocessor,
            num_classes,
            embedding_dim=config.embedding_dim,
            units=config.units,
            num_layers=config.num_layers,
            dropout=config.dropout,
            bidirectional=config.name == "bilstm",
            embeddings_initializer=embeddings_initializer,
            freeze_embeddings=config.freeze_embeddings,
            unroll=config.unroll,
        )
    if config.name == "transformer":
        return build_transformer_classifier(
            preprocessor,
            num_classes,
            embedding_dim=config.embedding_dim,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            ff_dim=config.ff_dim,
            dropout=config.dropout,
            embeddings_initializer=embeddings_initializer,
            freeze_embeddings=config.freeze_embeddings,
        )
    raise ValueError(
        f"`model.name` must be one of {MODEL_NAMES}. Received: model.name={config.name!r}."
    )
