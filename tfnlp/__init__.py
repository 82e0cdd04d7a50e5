"""tfnlp: text to a fast, compressed, servable TensorFlow model.

The public API is imported lazily, so `import tfnlp` (and `tfnlp validate`) does not pay for
importing TensorFlow until a name that needs it is used.

Example:
    >>> import tfnlp
    >>> config = tfnlp.load_pipeline("pipelines/tweets_bilstm.yaml", ["data.limit=2000"])
    >>> result = tfnlp.train_pipeline(config, "runs/quick")
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_pipeline": "tfnlp.config",
    "PipelineConfig": "tfnlp.config",
    "ConfigError": "tfnlp.config",
    "load_examples": "tfnlp.data",
    "read_texts": "tfnlp.data",
    "split_examples": "tfnlp.data",
    "build_dataset": "tfnlp.data",
    "DataError": "tfnlp.data",
    "TextPreprocessor": "tfnlp.preprocessing",
    "build_model": "tfnlp.models",
    "build_lstm_classifier": "tfnlp.models",
    "build_transformer_classifier": "tfnlp.models",
    "train_pipeline": "tfnlp.training.run",
    "load_trained": "tfnlp.training.trained",
    "TASKS": "tfnlp.tasks",
    "export_saved_model": "tfnlp.export",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfnlp' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
