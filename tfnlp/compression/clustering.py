"""Weight clustering with tfmot: each clustered matrix keeps only `number_of_clusters` values.

Clustering shrinks the model only once compressed (gzip) or with a palette-aware runtime:
the float file stays the same size, but with 16 distinct values per matrix it compresses well.
"""

from __future__ import annotations

from tfnlp.backend import keras


def cluster_id_model(id_model: keras.Model, number_of_clusters: int = 16):
    """Wraps the Embedding, Dense and LSTM layers in tfmot's `ClusterWeights`.

    Only layers with a weight matrix worth clustering and no incoming padding mask are
    wrapped (tfmot's wrapper passes Keras' mask on to layers such as LayerNormalization that
    refuse it). The others (the custom Transformer block, the Bidirectional subclass used for
    pruning, LayerNorm) stay as they are and are listed.

    Returns:
        `(model, details)` with details {"clustered": [...], "not_clustered": [...]}.

    Raises:
        ValueError: fewer than 2 clusters.
    """
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.clustering.keras.cluster_config import (
        CentroidInitialization,
    )
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry,
    )

    if not isinstance(number_of_clusters, int) or number_of_clusters < 2:
        raise ValueError(
            "`compression.number_of_clusters` must be an integer >= 2. "
            f"Received: number_of_clusters={number_of_clusters!r}."
        )
    clustered, skipped = [], []

    def wrap(layer):
        if isinstance(layer, keras.layers.InputLayer) or not layer.weights:
            return layer
        matrices = (keras.layers.Embedding, keras.layers.Dense, keras.layers.LSTM)
        if type(layer) in matrices and ClusteringRegistry.supports(layer):
            clustered.append(layer.name)
            return tfmot.clustering.keras.cluster_weights(
                layer,
                number_of_clusters=number_of_clusters,
                cluster_centroids_init=CentroidInitialization.KMEANS_PLUS_PLUS,
            )
        skipped.append(layer.name)
        return layer

    model = keras.models.clone_model(id_model, clone_function=wrap)
    return model, {
        "clustered": clustered,
        "not_clustered": skipped,
        "number_of_clusters": number_of_clusters,
    }


def strip_clustering(model: keras.Model) -> keras.Model:
    """The model without tfmot's clustering wrappers (weights now hold the centroids)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.clustering.keras.strip_clustering(model)


def distinct_values(model: keras.Model, layer_names: list[str]) -> dict[str, int]:
    """The number of distinct values in each clustered layer's kernel/embeddings."""
    import numpy as np

    counts = {}
    for layer in model.layers:
        if layer.name in layer_names:
            for weight in layer.weights:
                base = weight.name.split("/")[-1].split(":")[0]
                if base in ("kernel", "embeddings", "recurrent_kernel"):
                    counts[f"{layer.name}/{base}"] = int(np.unique(weight.numpy()).size)
    return counts
