"""Publishing to remote storage (`export.dir: gs://…`, `s3://…`, `hdfs://…`, `ram://…`).

Object stores have no atomic rename of a directory: a "rename" copies object by object, and a
version directory exists as soon as its first object does. So a remote version is built and
checked completely on local disk first (by the local `publish`, op check, warm-up file and
reference outputs included), then uploaded in the order TF-Serving's poller tolerates:
every file except `saved_model.pb`, then `saved_model.pb` last. A server that lists the
version before it is complete finds no `saved_model.pb`, fails that load and retries it
(`--max_num_load_retries`, 5 by default, a minute apart), by which time the version is whole;
it never loads half a model. `models.config` and `version_labels.json` are single objects,
each written whole. What is not atomic there: pruning (`export.keep`) deletes an old version
object by object (a server already serving it is unaffected: the model is in memory), and two
exports racing for the next version number can both take it.
"""

from __future__ import annotations

import logging

from tfnlp.atomic import write_json, write_text
from tfnlp.backend import tf
from tfnlp.export.model_config import LABELS_FILE, MODELS_CONFIG, model_entry
from tfnlp.export.server_config import server_config_texts
from tfnlp.export.versions import check_model_name, remote_versions

logger = logging.getLogger("tfnlp")

SAVED_MODEL_FILE = "saved_model.pb"


def upload_version(local_version: str, remote_version: str) -> None:
    """Copies a finished local SavedModel directory up, `saved_model.pb` last."""
    files = []
    for directory, _, names in tf.io.gfile.walk(local_version):
        files += [f"{directory}/{name}" for name in names]
    files.sort(key=lambda path: path.endswith("/" + SAVED_MODEL_FILE))  # the .pb goes last
    for path in files:
        target = remote_version + path[len(local_version):]
        tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
        tf.io.gfile.copy(path, target, overwrite=True)


def next_version(export_root: str, name: str, version: int | str) -> int:
    """The version number a remote export takes ("auto": one past the newest there).

    Raises:
        ValueError: an explicit version that already exists there.
    """
    model_dir = f"{export_root.rstrip('/')}/{check_model_name(name)}"
    versions = remote_versions(model_dir)
    if version == "auto":
        return (versions[-1] if versions else 0) + 1
    if version in versions:
        raise ValueError(f"{model_dir}/{version} already exists; set `export.version: auto` "
                         "or a new version number.")
    return version


def upload_published(local_version: str, export_root: str, name: str, *, keep, labels) -> str:
    """Uploads a version `publish` built and checked locally, then prunes, labels and
    rewrites `models.config` there (see the module docstring for what is atomic).

    Returns:
        The URL of the new version directory.
    """
    root = export_root.rstrip("/")
    model_dir = f"{root}/{check_model_name(name)}"
    target = f"{model_dir}/{local_version.rstrip('/').rsplit('/', 1)[-1]}"
    upload_version(local_version, target)
    logger.info("export: uploaded %s (saved_model.pb last)", target)
    versions = remote_versions(model_dir)
    if keep is not None:
        for old in versions[:-keep]:
            tf.io.gfile.rmtree(f"{model_dir}/{old}")
        versions = versions[-keep:]
    if labels is not None:
        _write_labels(model_dir, labels, versions)
    write_text(f"{root}/{MODELS_CONFIG}", remote_models_config_text(root))
    for file_name, text in server_config_texts():
        if not tf.io.gfile.exists(f"{root}/{file_name}"):
            write_text(f"{root}/{file_name}", text)
    return target


def _write_labels(model_dir: str, labels: dict[str, int], versions: list[int]) -> None:
    for label, version in labels.items():
        if version not in versions:
            raise ValueError(f"`export.labels.{label}` must name an exported version of "
                             f"{model_dir}. Received: {version}; the versions are {versions}.")
    path = f"{model_dir}/{LABELS_FILE}"
    if labels:
        write_json(path, dict(sorted(labels.items())))
    elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def remote_models_config_text(root: str) -> str:
    """The `model_config_list` for the models under a remote export root (URL base paths)."""
    import json

    entries = []
    for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(root)):
        versions = remote_versions(f"{root}/{name}")
        if not versions or name.startswith("."):
            continue
        labels_file = f"{root}/{name}/{LABELS_FILE}"
        labels = (json.loads(tf.io.gfile.GFile(labels_file).read())
                  if tf.io.gfile.exists(labels_file) else {})
        entries.append(model_entry(name, f"{root}/{name}", set(versions), labels))
    return "model_config_list {\n" + "".join(entries) + "}\n"
