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


def fingerprint(*parts) -> str:
    """A stable hash of JSON-able parts (e.g. preprocessing settings and training texts)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:16]
