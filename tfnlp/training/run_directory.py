"""The run directory: everything one pipeline run writes, and how to read it back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from tfnlp import atomic
from tfnlp.config.loading import from_dict, to_dict
from tfnlp.config.schema import PipelineConfig


@dataclass(frozen=True)
class RunDirectory:
    """Paths inside `runs/<name>/`, plus reading and writing its small files."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def vocabulary_file(self) -> Path:
        return self.path / "vocab.txt"

    @property
    def labels_file(self) -> Path:
        return self.path / "labels.json"

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "best"

    @property
    def identity_file(self) -> Path:
        """What the checkpoints were trained for (`checkpoint_identity`), beside them."""
        return self.path / "checkpoints" / "identity.json"

    @property
    def backup_dir(self) -> Path:
        return self.path / "backup"

    @property
    def has_backup(self) -> bool:
        """True while an interrupted run's BackupAndRestore state waits to be resumed."""
        return self.backup_dir.is_dir() and any(self.backup_dir.iterdir())

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    def create(self) -> RunDirectory:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, config: PipelineConfig) -> None:
        atomic.write_text(self.config_file, yaml.safe_dump(to_dict(config), sort_keys=False))

    def read_config(self) -> PipelineConfig:
        if not self.config_file.is_file():
            raise FileNotFoundError(
                f"{self.path}: not a run directory (no config.yaml). Train one with "
                "`tfnlp train PIPELINE`."
            )
        return from_dict(yaml.safe_load(self.config_file.read_text()), str(self.config_file))

    def write_json(self, name: str, data) -> Path:
        return atomic.write_json(self.path / name, data)

    def read_json(self, name: str):
        return json.loads((self.path / name).read_text())

    def write_vocabulary(self, vocabulary: list[str], fingerprint: str) -> None:
        atomic.write_text(self.vocabulary_file, "\n".join(vocabulary) + "\n")
        self.write_json("vocab.json", {"fingerprint": fingerprint, "size": len(vocabulary)})

    def read_vocabulary(self, fingerprint: str | None = None) -> list[str] | None:
        """The stored vocabulary; None if absent or learned from other texts/settings."""
        if not self.vocabulary_file.is_file() or not (self.path / "vocab.json").is_file():
            return None
        if fingerprint is not None and self.read_json("vocab.json")["fingerprint"] != fingerprint:
            return None
        return self.vocabulary_file.read_text(encoding="utf-8").split("\n")[:-1]

    def read_labels(self) -> list[str]:
        return self.read_json("labels.json")

    def checkpoint_identity(self, config: PipelineConfig) -> dict:
        """The task, model section and vocabulary hash that this run's checkpoints must have."""
        return {"task": config.task, "model": to_dict(config)["model"],
                "vocabulary": fingerprint(self.read_vocabulary())}

    def write_checkpoint_identity(self, config: PipelineConfig) -> None:
        self.write_json(str(self.identity_file.relative_to(self.path)),
                        self.checkpoint_identity(config))

    def check_checkpoint_identity(self, config: PipelineConfig) -> None:
        """Refuses checkpoints trained for another model or vocabulary (copied in from
        another run), naming both.

        Raises:
            CheckpointMismatch: `identity.json` differs from what this run's files describe.
        """
        if not self.identity_file.is_file():
            return  # a run from before identities; the shapes are still checked on loading
        found, expected = json.loads(self.identity_file.read_text()), self.checkpoint_identity(
            config)
        differences = [f"{key}: {found.get(key)!r} there, {expected[key]!r} here"
                       for key in ("task", "vocabulary") if found.get(key) != expected[key]]
        # A model key newer than the identity is not compared: the run could not set it.
        found_model = found.get("model", {})
        differences += [
            f"model.{key}: {found_model.get(key)!r} there, {value!r} here"
            for key, value in expected["model"].items()
            if key in found_model and found_model[key] != value]
        if differences:
            raise CheckpointMismatch(
                f"{self.identity_file.parent}: these checkpoints were trained for another "
                f"model or vocabulary than {self.config_file} and {self.vocabulary_file} "
                f"describe ({'; '.join(differences)}). Copy whole run directories, not their "
                "checkpoints, or train this pipeline again.")


class CheckpointMismatch(ValueError):
    """A checkpoint does not belong to the run directory it is in."""


def fingerprint(*parts) -> str:
    """A stable hash of JSON-able parts (e.g. preprocessing settings and training texts)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:16]
