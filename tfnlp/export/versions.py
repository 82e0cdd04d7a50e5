"""The version layout TF-Serving polls: `<export_root>/<name>/<version>/`, integer versions.

Each version is written to a hidden temporary directory beside it and renamed into place
(`claim_version`), so a server polling the directory never sees half a version (TF-Serving
ignores names that are not integers); old versions vanish by one rename too (`prune_versions`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from tfnlp.atomic import is_remote
from tfnlp.config.schema import SAFE_NAME

logger = logging.getLogger("tfnlp")


def check_model_name(name: str) -> str:
    """Refuses names that are not a single safe path component (no `..`, `/`, absolute paths).

    Example:
        >>> check_model_name("tweets_bilstm")
        'tweets_bilstm'
        >>> check_model_name("../etc")
        Traceback (most recent call last):
        ...
        ValueError: `export.name` must be letters, digits, '.', '_' or '-' ...
    """
    if not isinstance(name, str) or not SAFE_NAME.match(name) or name in (".", ".."):
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


def claim_version(saved: Path, model_dir: Path, version: int | str) -> Path:
    """Renames a finished SavedModel into a version directory (atomic on one filesystem).

    Args:
        saved: the complete SavedModel directory (staged inside `model_dir`).
        model_dir: `<export_root>/<name>`.
        version: "auto" for the next free integer, or an explicit positive integer.

    Raises:
        ValueError: a bad version, or an explicit version that already exists.
    """
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


def remote_versions(model_dir: str) -> list[int]:
    """The integer version directories under a remote (`tf.io.gfile`) `model_dir`, ascending."""
    from tfnlp.backend import tf

    if not tf.io.gfile.isdir(model_dir):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(model_dir))
    return sorted(int(name) for name in names if name.isdigit())


def latest_version(model_path: str | Path) -> Path | str:
    """Resolves a model directory to its newest version (a version directory is kept as is).

    A remote model path (`gs://…`, `ram://…`) resolves to a URL string.
    """
    if is_remote(model_path):
        return _latest_remote_version(str(model_path).rstrip("/"))
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


def _latest_remote_version(path: str) -> str:
    from tfnlp.backend import tf

    if tf.io.gfile.exists(f"{path}/saved_model.pb"):
        return path
    versions = remote_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path}: no SavedModel here (expected saved_model.pb or "
                                "integer version directories).")
    return f"{path}/{versions[-1]}"
