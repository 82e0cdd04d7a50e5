"""Fixtures for the compression tests: the tiny run's id-level model and its data as ids."""

import numpy as np
import pytest

from tfnlp.backend import tf


@pytest.fixture(scope="session")
def tiny_preprocessor(tiny_run):
    """The tiny run's `TextPreprocessor` layer (the first layer of its string-in model)."""
    from tfnlp.preprocessing import TextPreprocessor

    return next(layer for layer in tiny_run.model.layers if isinstance(layer, TextPreprocessor))


@pytest.fixture(scope="session")
def tiny_ids(tiny_run, tiny_preprocessor):
    """(id model, full model, padded test ids [n, L], test texts, sequence length)."""
    from tfnlp.compression.id_model import build_id_model

    model = tiny_run.model
    length = tiny_preprocessor.sequence_length
    texts = ["I love this so much!", "worst day ever #fail", "ok", "@bob see http://x.co 42"]
    tokens = tiny_preprocessor(tf.constant(texts)).numpy()
    ids = np.zeros((len(texts), length), np.int32)
    ids[:, : tokens.shape[1]] = tokens
    return build_id_model(model), model, ids, texts, length
