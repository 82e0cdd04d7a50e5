"""Exports for TF-Serving: versioned, atomic SavedModels that take raw strings.

`module.publish` is the one export path; each task supplies a `module.ServingModule`.
"""

from tfnlp.export.classification import (
    CLASSIFY_SIGNATURE,
    SERVING_SIGNATURE,
    ClassifierServingModule,
    export_saved_model,
)
from tfnlp.export.module import ServingModule, publish
from tfnlp.export.versions import (
    check_model_name,
    existing_versions,
    latest_version,
    prune_versions,
)

__all__ = [
    "CLASSIFY_SIGNATURE",
    "SERVING_SIGNATURE",
    "ClassifierServingModule",
    "ServingModule",
    "check_model_name",
    "existing_versions",
    "export_saved_model",
    "latest_version",
    "prune_versions",
    "publish",
]
