"""The one place that imports Keras.

tfnlp uses tf-keras (Keras 2) everywhere: tensorflow-model-optimization 0.8 refuses Keras 3
objects, and TF Model Garden made the same choice. Importing `tf_keras` directly (rather than
`tf.keras`) means behaviour never depends on `TF_USE_LEGACY_KERAS` or on import order.

Usage: `from tfnlp.backend import keras, tf`.
"""

import os

# Quieten TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Without it `import tensorflow` also imports Keras 3 (and scikit-learn through its wrappers):
# 2.5-3.5 s of every tfnlp process's start-up, for a Keras tfnlp never uses. It also makes
# `tf.keras` the same tf-keras as ours, so a user's `tf.keras` layer fits a tfnlp model.
# The processes tfnlp starts (serve-check's fresh ones) inherit it and start faster too.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
