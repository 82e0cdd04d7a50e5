"""Which `Parallelism` a `distribute:` section asks for (kept apart so that the engines can
subclass `tfnlp.training.parallelism.Parallelism` without an import cycle)."""

from __future__ import annotations

from tfnlp.backend import tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.training.parallelism import Parallelism


def parallelism_for(config: PipelineConfig, strategy: tf.distribute.Strategy) -> Parallelism:
    """DTensor for `strategy: dtensor`, pipeline stages for `pipeline.stages > 1`, else data
    parallelism over the strategy's replicas."""
    distribute = config.distribute
    if distribute.strategy == "dtensor":
        from tfnlp.training.dtensor import DTensorParallelism  # imports DTensor only when used

        return DTensorParallelism(config)
    if distribute.pipeline is not None and distribute.pipeline.stages > 1:
        from tfnlp.training.pipeline import PipelineParallelism

        return PipelineParallelism(config)
    return Parallelism(config, strategy.num_replicas_in_sync)
