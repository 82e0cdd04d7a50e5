"""Where Vertex AI asks a custom job to write, honoured where the command line is silent.

Vertex sets these in every replica of a CustomJob that has a `baseOutputDirectory`
(`tfnlp launch --emit vertex --run-dir gs://...` writes one):

    AIP_CHECKPOINT_DIR       <base>/checkpoints/  -> the run directory (--run-dir wins)
    AIP_MODEL_DIR            <base>/model/        -> export.dir (--set export.dir= wins)
    AIP_TENSORBOARD_LOG_DIR  <base>/logs/         -> the TensorBoard callback's log directory

Example:
    >>> environ = {"AIP_CHECKPOINT_DIR": "gs://b/run/checkpoints/",
    ...            "AIP_MODEL_DIR": "gs://b/run/model/"}
    >>> run_dir, overrides, notes = output_locations(None, ["train.epochs=1"], environ)
    >>> run_dir, overrides
    ('gs://b/run/checkpoints/', ['train.epochs=1', 'export.dir="gs://b/run/model/"'])
    >>> output_locations("runs/mine", ["export.dir=out"], environ)[:2]
    ('runs/mine', ['export.dir=out'])
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger("tfnlp")

RUN_DIR_VARIABLE = "AIP_CHECKPOINT_DIR"
EXPORT_DIR_VARIABLE = "AIP_MODEL_DIR"
TENSORBOARD_VARIABLE = "AIP_TENSORBOARD_LOG_DIR"


def output_locations(
    run_dir: str | None, overrides: Sequence[str], environ: Mapping[str, str] | None = None,
) -> tuple[str | None, list[str], list[str]]:
    """The run directory and overrides with Vertex's directories where none was given.

    Args:
        run_dir: `--run-dir` (None: not given).
        overrides: the `--set` values.
        environ: the environment (default `os.environ`).

    Returns:
        (the run directory, or None for the default `runs/<name>`; the overrides, with
        `export.dir` added from AIP_MODEL_DIR; one log line per variable honoured).
    """
    environ = os.environ if environ is None else environ
    overrides, notes = list(overrides), []
    if not run_dir and environ.get(RUN_DIR_VARIABLE):
        run_dir = environ[RUN_DIR_VARIABLE]
        notes.append(f"run directory {run_dir} (from {RUN_DIR_VARIABLE}, Vertex AI)")
    export_set = any(o.partition("=")[0].strip() == "export.dir" for o in overrides)
    if not export_set and environ.get(EXPORT_DIR_VARIABLE):
        export_dir = environ[EXPORT_DIR_VARIABLE]
        overrides.append(f"export.dir={json.dumps(export_dir)}")  # JSON strings are YAML
        notes.append(f"export.dir {export_dir} (from {EXPORT_DIR_VARIABLE}, Vertex AI)")
    return run_dir, overrides, notes


def tensorboard_dir(default: Path, environ: Mapping[str, str] | None = None) -> str | Path:
    """AIP_TENSORBOARD_LOG_DIR where Vertex sets it (logged), else `default`."""
    environ = os.environ if environ is None else environ
    if environ.get(TENSORBOARD_VARIABLE):
        logger.info("TensorBoard logs: %s (from %s, Vertex AI)", environ[TENSORBOARD_VARIABLE],
                    TENSORBOARD_VARIABLE)
        return environ[TENSORBOARD_VARIABLE]
    return default
