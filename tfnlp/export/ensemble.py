"""Several classifiers served as one: raw strings in, their averaged probabilities out.

Each member keeps its own preprocessing (vocabulary, tokenizer, sequence length), so every
member runs on the raw strings and the ensemble needs no shared vocabulary. The module is a
`ClassifierServingModule` whose probabilities are the weighted average of the members', so
`serving_default`, `classify`, the warm-up requests and the reference outputs are the
classifiers' own, and `publish` exports it like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.export.classification import ClassifierServingModule, served_probabilities
from tfnlp.export.module import ServingModule, Untracked
from tfnlp.export.reference import CHECK_TEXTS
from tfnlp.preprocessing import TextPreprocessor


def normalized_weights(weights: Sequence[float], members: int) -> list[float]:
    """`weights` scaled to sum to 1.

    Raises:
        ValueError: not one weight per member, fewer than two members, or a weight that is
            negative or not finite, or all zero.

    Example:
        >>> normalized_weights([0.75, 0.25, 1.0], 3)
        [0.375, 0.125, 0.5]
    """
    if members < 2:
        raise ValueError(f"An ensemble needs at least two members. Received: {members}.")
    values = np.asarray(weights, dtype=np.float64)
    if values.shape != (members,) or not np.all(np.isfinite(values)) or np.any(values < 0) or (
            values.sum() <= 0):
        raise ValueError(f"`weights` must be {members} finite numbers >= 0, not all 0. "
                         f"Received: weights={list(weights)!r}.")
    return (values / values.sum()).tolist()


class EnsembleServingModule(ClassifierServingModule):
    """String-in classifiers over the same labels, served as their weighted average.

    Args:
        members: models mapping `[batch]` strings to `[batch, classes]` logits.
        labels: the label names in id order (every member's).
        weights: one weight per member (>= 0); scaled to sum to 1.

    Raises:
        ValueError: fewer than two members, or weights that do not fit them.
    """

    def __init__(self, members: Sequence[keras.Model], labels: list[str],
                 weights: Sequence[float]):
        weights = normalized_weights(weights, len(members))
        # Not ClassifierServingModule.__init__: that wraps one model (or its portable graph).
        ServingModule.__init__(self, "tfnlp_serving")
        # Saving tracks the members' variables and preprocessing layers (their lookup tables),
        # not the Keras models: tracked models are re-traced layer by layer for Keras's own
        # metadata, which made a two-member export 3x slower (28 s against 10 s).
        self._members = Untracked(list(members))
        self.member_variables = [list(member.variables) for member in members]
        self.member_preprocessors = [
            [layer for layer in member.layers if isinstance(layer, TextPreprocessor)]
            for member in members]
        self.member_weights = Untracked(weights)
        self._add_labels_and_one_trace(labels)

    def probabilities(self, text):
        weighted = [weight * served_probabilities(member, text)
                    for member, weight in zip(self._members.value, self.member_weights.value)]
        return tf.add_n(weighted)  # (B, C): still sums to 1 per row

    def reference(self) -> dict:
        # The members as trained (Keras, eagerly), averaged: what the SavedModel must answer.
        probabilities = self.probabilities(tf.constant(CHECK_TEXTS)).numpy()
        return {"kind": "classifier", "texts": list(CHECK_TEXTS),
                "probabilities": [[float(p) for p in row] for row in probabilities],
                "portable": False, "sequence_length": None,
                "ensemble": {"members": len(self._members.value),
                             "weights": self.member_weights.value}}
