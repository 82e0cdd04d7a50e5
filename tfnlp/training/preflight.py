"""Checks that run before any training, so a run fails in seconds, not after an hour."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tfnlp.config.schema import PipelineConfig
from tfnlp.models.word_vectors import vectors_dimension
from tfnlp.training.resume import BACKUPS_KEPT


class PreflightError(RuntimeError):
    """A problem found before training (names the path or key and how to fix it)."""


def estimate_parameters(config: PipelineConfig) -> int:
    """A generous parameter count from the config alone (the vocabulary is not learned yet)."""
    m = config.model
    count = config.preprocessing.vocab_size * m.embedding_dim
    if m.name in ("lstm", "bilstm"):
        directions = 2 if m.name == "bilstm" else 1
        width = m.embedding_dim
        for _ in range(m.num_layers):
            count += directions * 4 * m.units * (width + m.units + 1)
            width = directions * m.units
    else:
        d = m.embedding_dim
        count += config.preprocessing.sequence_length * d
        count += m.num_layers * (4 * d * d + 2 * d * m.ff_dim + 8 * d)
    # Heads, norms and biases are small: a margin covers them rather than a formula per layer.
    return int(count * 1.05) + 4096


def check_writable(directory: Path, key: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise PreflightError(
            f"{directory}: cannot write here ({error.strerror}); choose another `{key}`."
        ) from None


def run_disk_bytes(config: PipelineConfig) -> int:
    """A generous estimate of the disk a run needs, from the config alone."""
    # Weights + two Adam slots, in float32, for the best and latest checkpoints, the kept
    # backups and the export, with a factor of 2 for temporary copies while writing.
    return estimate_parameters(config) * 4 * 3 * (3 + BACKUPS_KEPT) * 2


def check_pretrained_embeddings(config: PipelineConfig) -> None:
    """`model.pretrained_embeddings` readable (its package installed, for a built-in) and of
    dimension `model.embedding_dim`.

    Raises:
        PreflightError: the file is missing or unreadable, or the dimensions differ.
        ImportError: a built-in's package is not installed (names the `pip install`).
    """
    model = config.model
    if model.pretrained_embeddings is None:
        return
    try:
        dimension = vectors_dimension(model.pretrained_embeddings)
    except (OSError, ValueError) as error:
        raise PreflightError(f"`model.pretrained_embeddings`: {error}") from None
    if dimension != model.embedding_dim:
        raise PreflightError(
            f"`model.embedding_dim` must equal the dimension of the vectors in "
            f"`model.pretrained_embeddings` ({model.pretrained_embeddings}: {dimension}). "
            f"Received: model.embedding_dim={model.embedding_dim}. Set "
            f"model.embedding_dim={dimension}.")


def run_preflight(config: PipelineConfig, run_dir: Path) -> None:
    """Output directories writable, enough free disk for checkpoints and the export, and the
    pretrained word vectors readable.

    Raises:
        PreflightError: the first problem found.
    """
    check_pretrained_embeddings(config)
    check_writable(run_dir, "--run-dir")
    export_dir = Path(config.export.dir)
    check_writable(export_dir, "export.dir")
    needed = run_disk_bytes(config)
    for directory in {run_dir, export_dir}:
        free = shutil.disk_usage(directory).free
        if free < needed:
            raise PreflightError(
                f"{directory}: {free / 1e6:.0f} MB free, but checkpoints and the export need "
                f"about {needed / 1e6:.0f} MB; free some disk or choose another directory."
            )
