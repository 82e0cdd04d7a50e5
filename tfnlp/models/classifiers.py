"""Text classifiers: raw strings in, float32 logits out, as plain functional tf-keras Models.

Each builder takes a ready `TextPreprocessor` (vocabulary learned) so the returned model runs
the whole path from text to logits; users can `compile` and `fit` it themselves.
"""

from __future__ import annotations

from tfnlp.backend import keras, tf
from tfnlp.models.layers import MaskedMeanPooling, PositionEmbedding, TransformerEncoderBlock
from tfnlp.preprocessing.layer import TextPreprocessor


def _text_input_and_ids(preprocessor: TextPreprocessor):
    text = keras.Input(shape=(), dtype=tf.string, name="text")
    return text, preprocessor(text)


def _embedding(preprocessor: TextPreprocessor, embedding_dim: int, initializer,
               frozen: bool) -> keras.layers.Embedding:
    return keras.layers.Embedding(
        preprocessor.vocabulary_size, embedding_dim, embeddings_initializer=initializer,
        mask_zero=True, trainable=not frozen, name="embedding")


def _logits(features, num_classes: int, dropout: float):
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    # float32 whatever the policy: softmax and loss must not run in half precision.
    return keras.layers.Dense(num_classes, dtype="float32", name="logits")(features)


def build_lstm_classifier(
    preprocessor: TextPreprocessor,
    num_classes: int,
    *,
    embedding_dim: int = 128,
    units: int = 128,
    num_layers: int = 2,
    dropout: float = 0.2,
    bidirectional: bool = False,
    embeddings_initializer="uniform",
    freeze_embeddings: bool = False,
    unroll: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Stacked (Bi)LSTM classifier: the classic Keras recipe, masked and regularised.

    The classic article model is `units=512, num_layers=3, dropout=0.2`; the defaults are
    sized down for CPUs and tweets.

    Args:
        preprocessor: the in-graph `TextPreprocessor` (its vocabulary sizes the embedding).
        num_classes: the number of labels.
        embedding_dim: token embedding width.
        units: LSTM units (per direction when `bidirectional`).
        num_layers: stacked LSTM layers.
        dropout: dropout on embeddings (whole channels), between layers and before the head.
        bidirectional: wrap each LSTM in `Bidirectional`.
        embeddings_initializer: the embedding's initializer, e.g. pretrained vectors
            (`tfnlp.models.pretrained.PretrainedEmbeddings`).
        freeze_embeddings: the embedding is not trained.
        unroll: unroll each LSTM into straight-line steps; needs a `preprocessor` with
            `fixed_length` (an unrolled loop has a static number of steps).
        name: the model name.

    Returns:
        A functional `keras.Model` mapping a `[batch]` string tensor to `[batch, num_classes]`
        float32 logits.
    """
    text, ids = _text_input_and_ids(preprocessor)
    x = _embedding(preprocessor, embedding_dim, embeddings_initializer, freeze_embeddings)(ids)
    x = keras.layers.SpatialDropout1D(dropout, name="embedding_dropout")(x)
    for index in range(num_layers):
        last = index == num_layers - 1
        layer = keras.layers.LSTM(units, return_sequences=not last, unroll=unroll,
                                  name=f"lstm_{index}")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bilstm_{index}")
        x = layer(x)
        if not last:
            x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
    logits = _logits(x, num_classes, dropout)
    default_name = "bilstm_classifier" if bidirectional else "lstm_classifier"
    return keras.Model(text, logits, name=name or default_name)


def build_transformer_classifier(
    preprocessor: TextPreprocessor,
    num_classes: int,
    *,
    embedding_dim: int = 128,
    num_layers: int = 1,
    num_heads: int = 4,
    ff_dim: int = 256,
    dropout: float = 0.1,
    embeddings_initializer="uniform",
    freeze_embeddings: bool = False,
    name: str = "transformer_classifier",
) -> keras.Model:
    """Transformer encoder classifier: token + position embeddings, pre-LN blocks, mean pool.

    Padding is masked in attention and in the pooling. `embeddings_initializer` and
    `freeze_embeddings` are the token embedding's, as in `build_lstm_classifier`.

    Returns:
        A functional `keras.Model` mapping `[batch]` strings to `[batch, num_classes]` logits.
    """
    text, ids = _text_input_and_ids(preprocessor)
    x = _embedding(preprocessor, embedding_dim, embeddings_initializer, freeze_embeddings)(ids)
    x = PositionEmbedding(preprocessor.sequence_length, name="position_embedding")(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for index in range(num_layers):
        x = TransformerEncoderBlock(num_heads, ff_dim, dropout, name=f"encoder_{index}")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5, dtype="float32", name="final_norm")(x)
    x = MaskedMeanPooling(name="mean_pool")(x)
    logits = _logits(x, num_classes, dropout)
    return keras.Model(text, logits, name=name)
