"""Versioned, atomic SavedModel exports in the layout TF-Serving polls.

`<export_root>/<name>/<version>/` with integer versions. Each version is written to a hidden
temporary directory beside it and renamed into place, so a server polling the directory
never sees half a version (TF-Serving ignores names that are not integers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from tfnlp.backend import keras, tf

logger = logging.getLogger("tfnlp")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SERVING_SIGNATURE = "serving_default"
CLASSIFY_SIGNATURE = "classify"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
# TF-Serving's Classify API requires the input key "inputs" (serialized tf.Examples).
CLASSIFY_INPUTS = "inputs"
TEXT_FEATURE = "text"


class ServingModule(tf.Module):
    """What gets exported: the Keras model (preprocessing inside) and the label names.

    `serve` takes a batch of raw UTF-8 strings and returns dense tensors only (what TF-Serving's
    REST and gRPC Predict APIs expect). `classify` is the same model in TF-Serving's Classify
    API form: serialized `tf.Example`s with a `text` feature in, `classes` and `scores` out.

    Args:
        model: a model mapping `[batch]` strings to `[batch, classes]` logits.
        labels: label names in id order.
        vocabulary_file: shipped as `assets/vocab.txt` when given.
        portable: replace the model's `TextPreprocessor` by `PortablePreprocessor` (TensorFlow
            core ops only) so no tensorflow-text op is in the graph.
    """

    def __init__(
        self,
        model: keras.Model,
        labels: list[str],
        vocabulary_file: str | None = None,
        portable: bool = False,
    ):
        super().__init__(name="tfnlp_serving")
        self.portable = portable
        if portable:
            from tfnlp.export.portable import PortablePreprocessor

            layer = _text_preprocessor(model)
            self.preprocessor = PortablePreprocessor(layer)
            # The layers after the preprocessor, as a model of their own: tracking the whole
            # model would save the tensorflow-text layer's functions too.
            self.model = keras.Model(layer.output, model.output, name=f"{model.name}_encoder")
        else:
            self.model = model
        # A variable (not a constant) so loaders can read the names: `loaded.label_names`.
        self.label_names = tf.Variable(labels, dtype=tf.string, trainable=False, name="labels")
        if vocabulary_file is not None:
            # Ships the vocabulary as assets/vocab.txt for people and tools reading the export.
            self.vocabulary_asset = tf.saved_model.Asset(vocabulary_file)

    def probabilities(self, text):
        if self.portable:
            logits = self.model(self.preprocessor(text), training=False)
        else:
            logits = self.model(text, training=False)
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        probabilities = self.probabilities(text)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label_id": label_id,
            "label": tf.gather(self.label_names, label_id),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
    def classify(self, inputs):
        features = tf.io.parse_example(
            inputs, {TEXT_FEATURE: tf.io.FixedLenFeature([], tf.string, default_value="")}
        )
        scores = self.probabilities(features[TEXT_FEATURE])
        classes = tf.tile(self.label_names[None, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}


def _sequence_length(model: keras.Model) -> int | None:
    try:
        return _text_preprocessor(model).sequence_length
    except ValueError:
        return None


def _text_preprocessor(model: keras.Model):
    from tfnlp.preprocessing.layer import TextPreprocessor

    for layer in model.layers:
        if isinstance(layer, TextPreprocessor):
            return layer
    raise ValueError(
        "`export.portable: true` needs a model with a `TextPreprocessor` layer. "
        f"Received: a model with layers {[type(layer).__name__ for layer in model.layers]}."
    )


def check_model_name(name: str) -> str:
    """Refuses names that are not a single safe path component (no `..`, `/`, absolute paths)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ValueError(
            "`export.name` must be letters, digits, '.', '_' or '-' (not starting with '.' or "
            f"'-'), at most 128 characters. Received: export.name={name!r}."
        )
    return name


def model_directory(export_root: str | Path, name: str) -> Path:
    """`<export_root>/<name>`, refusing unsafe names and symlinks that lead out of the root.

    Raises:
        ValueError: the name is not one safe path component, or the model directory is a
            symlink resolving outside `export_root` (an export must not write elsewhere).
    """
    root = Path(export_root)
    model_dir = root / check_model_name(name)
    if model_dir.is_symlink() and not model_dir.resolve().is_relative_to(root.resolve()):
        raise ValueError(
            f"{model_dir} is a symlink to {model_dir.resolve()}, outside the export root "
            f"{root}; remove the link or choose another `export.name`."
        )
    return model_dir


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
    keep: int | None = None,
    portable: bool = False,
    warmup_texts: list[str] | None = None,
    check_ops: bool = True,
) -> Path:
    """Exports `model` for TF-Serving as `<export_root>/<name>/<version>/`.

    Writes the SavedModel (`serving_default` and `classify` signatures), the warm-up requests
    and the reference outputs in `assets.extra/`, checks its ops, renames it into place, prunes
    old versions and rewrites `<export_root>/models.config`.

    Args:
        model: a model mapping `[batch]` strings to `[batch, classes]` logits.
        labels: label names in id order.
        export_root: the directory TF-Serving's model base paths live under.
        name: the model name (one safe path component).
        version: "auto" for the next free integer, or an explicit positive integer.
        vocabulary: written as `assets/vocab.txt` when given.
        keep: keep only the newest `keep` versions (None keeps all).
        portable: preprocessing from TensorFlow core ops only (see `tfnlp.export.portable`).
        warmup_texts: a few real texts for `assets.extra/tf_serving_warmup_requests`; None
            writes no warm-up file.
        check_ops: refuse the export when an op is neither TensorFlow core nor tensorflow-text
            (or, when `portable`, not core).

    Returns:
        The path of the new version directory.

    Raises:
        ValueError: a bad name, version or keep, an explicit version that already exists, or
            ops a stock runtime lacks.
    """
    from tfnlp.export.model_config import write_models_config
    from tfnlp.export.reference import CHECK_TEXTS, write_reference
    from tfnlp.export.warmup import write_warmup_requests

    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
        raise ValueError(
            f"`export.keep` must be a positive integer or null. Received: export.keep={keep!r}."
        )
    model_dir = model_directory(export_root, name)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=model_dir))
    try:
        vocabulary_file = None
        if vocabulary is not None:
            vocabulary_file = staging / "vocab.txt"
            vocabulary_file.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        module = ServingModule(
            model, labels, str(vocabulary_file) if vocabulary_file else None, portable=portable
        )
        saved = staging / "saved_model"
        tf.saved_model.save(module, str(saved), signatures={
            SERVING_SIGNATURE: module.serve, CLASSIFY_SIGNATURE: module.classify,
        })
        set_method_name(saved, CLASSIFY_SIGNATURE, CLASSIFY_METHOD_NAME)
        if warmup_texts:
            write_warmup_requests(saved, warmup_texts, name)
        logits = model(tf.constant(CHECK_TEXTS), training=False)
        write_reference(
            saved, CHECK_TEXTS, tf.nn.softmax(tf.cast(logits, tf.float32)).numpy(),
            portable=portable, sequence_length=_sequence_length(model),
        )
        if check_ops:
            _refuse_unportable_ops(saved, portable)
        path = _publish(saved, model_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if keep is not None:
        prune_versions(model_dir, keep)
    write_models_config(export_root)
    return path


def set_method_name(saved_model_dir: Path, signature: str, method_name: str) -> None:
    """Sets a signature's method name in `saved_model.pb` (tf.saved_model.save writes Predict).

    TF-Serving's Classify API only accepts signatures whose method name is
    `tensorflow/serving/classify`; the fingerprint is rewritten to match the changed file.
    """
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.saved_model import fingerprinting_utils

    path = saved_model_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[signature].method_name = method_name
    path.write_bytes(saved_model.SerializeToString())
    if (saved_model_dir / "fingerprint.pb").is_file():
        fingerprinting_utils.write_fingerprint(str(saved_model_dir))


def _refuse_unportable_ops(saved: Path, portable: bool) -> None:
    from tfnlp.export.ops import TEXT, UNKNOWN, check_ops

    report = check_ops(saved)
    logger.info("export ops: %s", report.summary())
    if not report.servable:
        raise ValueError(
            f"The export uses ops that stock TF-Serving lacks: {report.by_provider(UNKNOWN)}. "
            "Remove the custom ops from the model."
        )
    if portable and not report.portable:
        raise ValueError(
            "`export.portable: true` must give a graph of TensorFlow core ops only. Received: "
            f"tensorflow-text ops {report.by_provider(TEXT)}. This is a bug in tfnlp's "
            "portable preprocessing; export with `export.portable: false` meanwhile."
        )


def prune_versions(model_dir: str | Path, keep: int) -> list[int]:
    """Deletes all but the newest `keep` integer versions under `model_dir`.

    Each old version is first renamed to a hidden name (atomic), so a server polling the
    directory sees it vanish at once, never half-deleted.

    Returns:
        The versions removed.
    """
    model_dir = Path(model_dir)
    removed = existing_versions(model_dir)[:-keep]
    for version in removed:
        hidden = Path(tempfile.mkdtemp(prefix=f".tmp-prune-{version}-", dir=model_dir))
        with contextlib.suppress(FileNotFoundError):  # another export pruned it first
            os.rename(model_dir / str(version), hidden / "version")
        shutil.rmtree(hidden, ignore_errors=True)
    if removed:
        logger.info("pruned versions %s of %s (export.keep=%d)", removed, model_dir, keep)
    return removed


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
