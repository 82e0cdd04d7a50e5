"""Pipeline configuration: schema, YAML loading, `--set` overrides, validation."""

from tfnlp.config.loading import ConfigError, apply_override, from_dict, load_pipeline, to_dict
from tfnlp.config.schema import (
    DataConfig,
    DistributeConfig,
    ExportConfig,
    ModelConfig,
    PipelineConfig,
    PrecisionConfig,
    PreprocessingConfig,
    TrainConfig,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "DistributeConfig",
    "ExportConfig",
    "ModelConfig",
    "PipelineConfig",
    "PrecisionConfig",
    "PreprocessingConfig",
    "TrainConfig",
    "apply_override",
    "from_dict",
    "load_pipeline",
    "to_dict",
]
