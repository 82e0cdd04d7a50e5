"""Exports for TF-Serving: versioned, atomic SavedModels that take raw strings."""

from tfnlp.export.saved_model import (
    CLASSIFY_SIGNATURE,
    SERVING_SIGNATURE,
    ServingModule,
    check_model_name,
    existing_versions,
    export_saved_model,
    latest_version,
    prune_versions,
)

__all__ = [
    "CLASSIFY_SIGNATURE",
    "SERVING_SIGNATURE",
    "ServingModule",
    "check_model_name",
    "existing_versions",
    "export_saved_model",
    "latest_version",
    "prune_versions",
]
