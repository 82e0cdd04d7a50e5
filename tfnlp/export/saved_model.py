"""Versioned, atomic SavedModel exports in the layout TF-Serving polls.

`<export_root>/<name>/<version>/` with integer versions. Each version is written to a hidden
temporary directory beside it and renamed into place, so a server polling the directory
never sees half a version (TF-Serving ignores names that are not integers).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from tfnlp.backend import keras, tf

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SERVING_SIGNATURE = "serving_default"


class ServingModule(tf.Module):
    """What gets exported: the Keras model (preprocessing inside) and the label names.

    `serve` takes a batch of raw UTF-8 strings and returns dense tensors only (what TF-Serving's
    REST and gRPC Predict APIs expect).
    """

    def __init__(self, model: keras.Model, labels: list[str], vocabulary_file: str | None = None):
        super().__init__(name="tfnlp_serving")
        self.model = model
        # A variable (not a constant) so loaders can read the names: `loaded.label_names`.
        self.label_names = tf.Variable(labels, dtype=tf.string, trainable=False, name="labels")
        if vocabulary_file is not None:
            # Ships the vocabulary as assets/vocab.txt for people and tools reading the export.
            self.vocabulary_asset = tf.saved_model.Asset(vocabulary_file)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        logits = self.model(text, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label_id": label_id,
            "label": tf.gather(self.label_names, label_id),
        }


def check_model_name(name: str) -> str:
    """Refuses names that are not a single safe path component (no `..`, `/`, absolute paths)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ValueError(
            "`export.name` must be letters, digits, '.', '_' or '-' (not starting with '.' or "
            f"'-'), at most 128 characters. Received: export.name={name!r}."
        )
    return name


def existing_versions(model_dir: Path) -> list[int]:
    """The integer version directories under `model_dir`, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def export_saved_model(
    model: keras.Model,
    labels: list[str],
    export_root: str | Path,
    name: str,
    *,
    version: int | str = "auto",
    vocabulary: list[str] | None = None,
) -> Path:
    """Exports `model` for TF-Serving as `<export_root>/<name>/<version>/`.

    Args:
        model: a model mapping `[batch]` strings to `[batch, classes]` logits.
        labels: label names in id order.
        export_root: the directory TF-Serving's model base paths live under.
        name: the model name (one safe path component).
        version: "auto" for the next free integer, or an explicit positive integer.
        vocabulary: written as `assets/vocab.txt` when given.

    Returns:
        The path of the new version directory.

    Raises:
        ValueError: a bad name or version, or an explicit version that already exists.
    """
    model_dir = Path(export_root) / check_model_name(name)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=model_dir))
    try:
        vocabulary_file = None
        if vocabulary is not None:
            vocabulary_file = staging / "vocab.txt"
            vocabulary_file.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        module = ServingModule(model, labels, str(vocabulary_file) if vocabulary_file else None)
        saved = staging / "saved_model"
        tf.saved_model.save(module, str(saved), signatures={SERVING_SIGNATURE: module.serve})
        return _publish(saved, model_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(saved: Path, model_dir: Path, version: int | str) -> Path:
    """Renames the finished SavedModel into a version directory (atomic on one filesystem)."""
    if version != "auto":
        if not isinstance(version, int) or version < 1:
            raise ValueError(
                f"`export.version` must be 'auto' or a positive integer. Received: {version!r}."
            )
        target = model_dir / str(version)
        if target.exists():
            raise ValueError(
                f"{target} already exists; set `export.version: auto` or a new version number."
            )
        os.rename(saved, target)
        return target
    # Another export may take the same number between listing and renaming: rename fails on a
    # non-empty target, so try the next one.
    for _ in range(100):
        versions = existing_versions(model_dir)
        target = model_dir / str((versions[-1] if versions else 0) + 1)
        try:
            os.rename(saved, target)
            return target
        except OSError:
            if not target.exists():
                raise
    raise RuntimeError(f"{model_dir}: could not claim a free version number after 100 tries.")


def latest_version(model_path: str | Path) -> Path:
    """Resolves a model directory to its newest version (a version directory is kept as is)."""
    path = Path(model_path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = existing_versions(path)
    if not versions:
        raise FileNotFoundError(
            f"{path}: no SavedModel here (expected saved_model.pb or integer version "
            "directories). Export one with `tfnlp export RUN_DIR`."
        )
    return path / str(versions[-1])
