"""Write files so a reader sees the old content or the new one, never half of it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def is_remote(path: str | Path) -> bool:
    """True for a `tf.io.gfile` URL (`gs://`, `s3://`, `hdfs://`, `ram://`), not a local path.

    Example:
        >>> is_remote("gs://bucket/models"), is_remote("saved_models")
        (True, False)
    """
    return "://" in str(path)


def write_bytes(path: str | Path, data: bytes) -> Path | str:
    """Writes `data` to a temporary file beside `path`, flushes it, then renames it over.

    A remote `path` goes through `tf.io.gfile` the same way; on object stores (`gs://`,
    `s3://`) the rename is a copy of one object, which appears whole or not at all.
    """
    if is_remote(path):
        return _write_remote(str(path), data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _write_remote(path: str, data: bytes) -> str:
    from tfnlp.backend import tf

    temporary = f"{path}.tmp-{os.getpid()}"
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(temporary, "wb") as file:
        file.write(data)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return path


def write_text(path: str | Path, text: str) -> Path | str:
    """`write_bytes` of `text` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data) -> Path | str:
    """`write_text` of `data` as indented JSON."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
