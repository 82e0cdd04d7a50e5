"""The one export path: a serving-module base, and `publish()` for every task's module.

`publish` stages the SavedModel in a hidden directory beside its versions, adds the
vocabulary asset, the signatures (with their TF-Serving method names), the warm-up requests
and the reference outputs, checks the ops, claims the version by one atomic rename, prunes
old versions (`export.keep`) and rewrites `<export_root>/models.config`. The classifiers,
the language models and the compressed SavedModels all go through it.
"""

from __future__ import annotations

import abc
import logging
import shutil
import tempfile
from pathlib import Path

from tfnlp.atomic import is_remote
from tfnlp.backend import cudnn_twins_for_serving, tf
from tfnlp.disk import disk_guard, variable_bytes
from tfnlp.export.model_config import write_models_config, write_version_labels
from tfnlp.export.reference import write_reference
from tfnlp.export.remote import next_version, upload_published
from tfnlp.export.server_config import write_server_configs
from tfnlp.export.versions import claim_version, model_directory, prune_versions
from tfnlp.export.warmup import write_warmup_records

logger = logging.getLogger("tfnlp")


class Untracked:
    """Hides an object from TensorFlow's object tracking.

    A serving module that tracked its Keras model would make `tf.saved_model.save` re-trace
    every layer's call for Keras's own SavedModel metadata (most of the export time, and
    tensorflow-text ops in a portable graph); modules track the variables instead.
    """

    def __init__(self, value):
        self.value = value


class ServingModule(tf.Module, abc.ABC):
    """What a task exports: `tf.function` signatures over raw strings, plus what `publish`
    writes beside them.

    Args:
        name: the module name.
        vocabulary: shipped as `assets/vocab.txt` (None ships none).
        portable: the graph must use TensorFlow core ops only (no tensorflow-text).
    """

    # Signature name -> TF-Serving method name, where it is not Predict.
    method_names: dict[str, str] = {}

    def __init__(self, name: str, vocabulary: list[str] | None = None, portable: bool = False):
        super().__init__(name=name)
        self._vocabulary = Untracked(list(vocabulary) if vocabulary is not None else None)
        self.portable = portable

    @property
    def vocabulary_tokens(self) -> list[str] | None:
        """The tokens `publish` writes to `assets/vocab.txt` (None: no vocabulary asset)."""
        return self._vocabulary.value

    @abc.abstractmethod
    def signatures(self) -> dict:
        """Signature name -> `tf.function` with an input signature (what TF-Serving serves)."""

    @abc.abstractmethod
    def warmup_records(self, texts: list[str], model_name: str) -> list[bytes]:
        """Serialized `PredictionLog`s that exercise every signature a server warms up."""

    @abc.abstractmethod
    def reference(self) -> dict:
        """What the training-time model answers for check inputs, for `tfnlp serve-check`."""


def publish(
    module: ServingModule,
    export_root: str | Path,
    name: str,
    *,
    version: int | str = "auto",
    keep: int | None = None,
    warmup_texts: list[str] | None = None,
    check_ops: bool = True,
    labels: dict[str, int] | None = None,
) -> Path:
    """Exports `module` for TF-Serving as `<export_root>/<name>/<version>/`.

    Then rewrites `<export_root>/models.config`, and writes the batching and monitoring flag
    files there where they are missing (`tfnlp.export.server_config`).

    Args:
        module: the task's serving module.
        export_root: the directory TF-Serving's model base paths live under.
        name: the model name (one safe path component).
        version: "auto" for the next free integer, or an explicit positive integer.
        keep: keep only the newest `keep` versions (None keeps all).
        warmup_texts: a few real texts for `assets.extra/tf_serving_warmup_requests`; None
            writes no warm-up file.
        check_ops: refuse the export when an op is neither TensorFlow core nor
            tensorflow-text (or, for a portable module, not core).
        labels: TF-Serving version labels to set after this export (e.g. {"stable": 3,
            "canary": 4}); None leaves the model's labels as they are, {} removes them.

    Returns:
        The path of the new version directory.

    Raises:
        ValueError: a bad name, version or keep, an explicit version that already exists,
            ops a stock runtime lacks, or a label naming a version that is not there (the new
            version is then published and the labels left as they were).
    """
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
        raise ValueError(
            f"`export.keep` must be a positive integer or null. Received: export.keep={keep!r}."
        )
    if is_remote(export_root):
        # Built and checked on local disk, then uploaded (`tfnlp.export.remote`).
        number = next_version(str(export_root), name, version)
        with tempfile.TemporaryDirectory(prefix="tfnlp-export-") as staging:
            local = publish(module, staging, name, version=number, warmup_texts=warmup_texts,
                            check_ops=check_ops)
            return upload_published(str(local), str(export_root), name, keep=keep,
                                    labels=labels)
    model_dir = model_directory(export_root, name)
    model_dir.mkdir(parents=True, exist_ok=True)
    # The graph, the vocabulary and warm-up files come on top of the weights: a generous MB.
    needed = variable_bytes(module.variables) + 2**20
    kept = "the versions published before are intact and no partial version is visible"
    with disk_guard(model_dir, "the export", needed, kept):  # outside: counts freed space
        path = _stage_and_claim(module, model_dir, name, version, warmup_texts, check_ops)
    if keep is not None:
        prune_versions(model_dir, keep)
    if labels is not None:
        write_version_labels(model_dir, labels)
    write_models_config(export_root)
    write_server_configs(export_root)
    return path


def _stage_and_claim(module, model_dir: Path, name: str, version, warmup_texts,
                     check_ops: bool) -> Path:
    """Writes the whole version in a hidden staging directory, then claims its number."""
    staging = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=model_dir))
    try:
        saved = _save(module, staging)
        if warmup_texts:
            write_warmup_records(saved, module.warmup_records(warmup_texts, name))
        write_reference(saved, module.reference())
        if check_ops:
            refuse_unservable_ops(saved, module.portable)
        return claim_version(saved, model_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _save(module: ServingModule, staging: Path) -> Path:
    """The SavedModel of `module` in `staging/saved_model`, vocabulary asset included."""
    if module.vocabulary_tokens is not None:
        vocabulary_file = staging / "vocab.txt"
        vocabulary_file.write_text("\n".join(module.vocabulary_tokens) + "\n", encoding="utf-8")
        # Ships as assets/vocab.txt for people and tools reading the export.
        module.vocabulary_asset = tf.saved_model.Asset(str(vocabulary_file))
    saved = staging / "saved_model"
    with cudnn_twins_for_serving():  # a GPU serving this export still gets cuDNN
        tf.saved_model.save(module, str(saved), signatures=module.signatures())
    for signature, method_name in module.method_names.items():
        set_method_name(saved, signature, method_name)
    return saved


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


def refuse_unservable_ops(saved: Path, portable: bool) -> None:
    """Raises `ValueError` when stock TF-Serving (or, when `portable`, stock TF) lacks an op."""
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
