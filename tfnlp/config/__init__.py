"""Pipeline configuration: schema (with its validation rules), YAML loading, `--set` overrides."""

from tfnlp.config.loading import ConfigError, apply_override, from_dict, load_pipeline, to_dict
from tfnlp.config.schema import (
    LANGUAGE_MODEL_NAMES,
    SAFE_NAME,
    CompressionConfig,
    DataConfig,
    DistributeConfig,
    ExportConfig,
    FieldError,
    LanguageModelConfig,
    ModelConfig,
    PipelineConfig,
    PrecisionConfig,
    PreprocessingConfig,
    TrainConfig,
)

__all__ = [
    "LANGUAGE_MODEL_NAMES",
    "SAFE_NAME",
    "CompressionConfig",
    "ConfigError",
    "DataConfig",
    "DistributeConfig",
    "ExportConfig",
    "FieldError",
    "LanguageModelConfig",
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
