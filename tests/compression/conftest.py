"""Fixtures for the compression tests: the tiny run's id-level model and its data as ids."""

import numpy as np
import pytest

from tfnlp.backend import tf


@pytest.fixture(scope="session")
def tiny_ids(tiny_run):
    """(id model, full model, padded test ids [n, L], test texts, sequence length)."""
    from tfnlp.compression.id_model import build_id_model
    from tfnlp.training.trainer import preprocessor_of

    model = tiny_run.model
    preprocessor = preprocessor_of(model)
    length = preprocessor.sequence_length
    texts = ["I love this so much!", "worst day ever #fail", "ok", "@bob see http://x.co 42"]
    tokens = preprocessor(tf.constant(texts)).numpy()
    ids = np.zeros((len(texts), length), np.int32)
    ids[:, : tokens.shape[1]] = tokens
    return build_id_model(model), model, ids, texts, length
