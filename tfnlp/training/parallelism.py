"""How one process spreads its model over its devices, beside the tf.distribute strategy.

The strategy (`tfnlp.training.strategy`) gives data parallelism: every replica holds the whole
model. A `Parallelism` adds what a strategy cannot: weights sharded over a DTensor mesh
(`tfnlp.training.dtensor`) or layers cut into pipeline stages (`tfnlp.training.pipeline`).
`Run` calls it at four points, and the data-parallel default changes nothing at any of them:

    build(make_models)        build the served and the trained model (may build twice: once
                              plainly to plan, then placed or sharded)
    optimizer(cls, **kwargs)  the optimizer (DTensor needs its mesh-aware one; the all-reduce
                              dtype wraps the gradient aggregation)
    fit_kwargs(kwargs, ...)   the `model.fit` data (DTensor reads a `DTensorDataset`)
    fit_scope()               entered around `model.fit`
    report(fitted)            per-device parameter bytes and communication volume

`tfnlp.training.engines.parallelism_for(config, strategy)` picks one from `distribute:`.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.disk import variable_bytes
from tfnlp.training.comms import with_all_reduce_dtype


def gradient_bytes(trainable_variables, dtype: str = "float32") -> int:
    """The bytes of one step's gradients, cast to `dtype` for the all-reduce."""
    size = tf.as_dtype(dtype).size
    return sum(int(np.prod(v.shape, dtype=np.int64)) * size for v in trainable_variables)


class Parallelism:
    """Data parallelism (or one device): every device holds every weight.

    Args:
        config: the pipeline (its `distribute:` section says what to do).
        replicas: the strategy's replicas in sync (gradients are all-reduced when > 1).

    Attributes:
        serves_a_copy: the trained model's weights are sharded or placed: evaluation, export
            and serving read the best checkpoint into an ordinary copy.
    """

    name = "data"
    serves_a_copy = False

    def __init__(self, config: PipelineConfig, replicas: int = 1):
        self.config = config
        self.distribute = config.distribute
        self.replicas = replicas

    @property
    def all_reduce_dtype(self) -> str:
        return self.distribute.all_reduce.dtype

    def build(self, make_models):
        """`make_models()` -> (served model, trained model), built in the caller's scopes."""
        return make_models()

    def optimizer(self, optimizer_class, **kwargs) -> keras.optimizers.Optimizer:
        """The optimizer; a reduced-precision all-reduce when `all_reduce.dtype` asks."""
        return with_all_reduce_dtype(optimizer_class(**kwargs), self.all_reduce_dtype)

    def fit_kwargs(self, fit_kwargs: dict, examples_per_epoch: int, global_batch: int) -> dict:
        """The data for `model.fit` (unchanged)."""
        return fit_kwargs

    def fit_scope(self):
        return contextlib.nullcontext()

    def report(self, fitted: keras.Model) -> dict:
        """What each device holds and what one step sends, for metrics.json and the bench."""
        communicated = (gradient_bytes(fitted.trainable_variables, self.all_reduce_dtype)
                        if self.replicas > 1 else 0)
        return {
            "kind": self.name,
            "devices": self.replicas,
            "parameter_bytes_per_device": variable_bytes(fitted.weights),
            "allreduce_bytes_per_step": communicated,
            "allreduce_dtype": self.all_reduce_dtype,
        }


def steps_for(examples: int, global_batch: int) -> int:
    """Whole global batches in `examples` (sharded inputs need every batch full)."""
    return max(1, math.floor(examples / global_batch))
