"""The classic per-improvement checkpoint (`weights-improvement-{epoch:02d}-{loss:.4f}.h5`),
keeping only the best K files."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from tfnlp import atomic
from tfnlp.backend import keras

logger = logging.getLogger("tfnlp")


class BestKCheckpoint(keras.callbacks.Callback):
    """Saves weights to a `filepath` template after each epoch that ranks among the best K.

    The template is formatted like Keras's `ModelCheckpoint`: `{epoch}` is 1-based and every
    logged metric (`{loss}`, `{val_loss}`, …) is available. Files falling out of the best K
    are deleted, so a long run keeps K files, not one per improvement. The ranking is kept in
    `best_checkpoints.json` beside the files, so a resumed run goes on pruning the same set.

    Args:
        filepath: the file name template, e.g. "checkpoints/weights-{epoch:02d}-{loss:.4f}.h5"
            (".h5" saves HDF5, anything else TensorFlow's checkpoint format).
        monitor: the logged metric that ranks checkpoints (lower is better).
        keep_best: how many files to keep.

    Raises:
        ValueError: a non-positive `keep_best`, or a template with an unknown field.
    """

    def __init__(self, filepath: str | Path, monitor: str = "loss", keep_best: int = 3):
        super().__init__()
        if not isinstance(keep_best, int) or keep_best < 1:
            raise ValueError(
                f"`keep_best` must be a positive integer. Received: keep_best={keep_best!r}."
            )
        self.filepath = str(filepath)
        self.monitor = monitor
        self.keep_best = keep_best
        self.kept: list[tuple[float, Path]] = []
        self.ranking_file = Path(self.filepath).parent / "best_checkpoints.json"
        if self.ranking_file.is_file():
            entries = json.loads(self.ranking_file.read_text())
            self.kept = [(float(e["value"]), Path(e["path"])) for e in entries
                         if Path(e["path"]).exists()]

    def forget(self) -> None:
        """Deletes the ranked files and the ranking (a fresh run must not inherit them)."""
        for _, path in self.kept:
            for file in [path, *path.parent.glob(path.name + ".*")]:
                file.unlink(missing_ok=True)
        self.kept = []
        self.ranking_file.unlink(missing_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            logger.warning("checkpoint: `%s` is not logged or not finite; not saving", self.monitor)
            return
        value = float(value)
        if len(self.kept) >= self.keep_best and value >= self.kept[-1][0]:
            return
        try:
            path = Path(self.filepath.format(epoch=epoch + 1, **logs))
        except KeyError as error:
            raise ValueError(
                f"`checkpoint_filepath` uses {{{error.args[0]}}}, which is not logged; use "
                f"{{epoch}} or one of {sorted(logs)}. Received: {self.filepath!r}."
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(str(path))
        self.kept = sorted(self.kept + [(value, path)], key=lambda item: item[0])
        for _, dropped in self.kept[self.keep_best:]:
            # A TensorFlow checkpoint is several files sharing the prefix.
            for file in [dropped, *dropped.parent.glob(dropped.name + ".*")]:
                if file != path:
                    file.unlink(missing_ok=True)
        self.kept = self.kept[: self.keep_best]
        atomic.write_json(self.ranking_file, [{"value": v, "path": str(p)} for v, p in self.kept])
        logger.info("checkpoint: %s (%s=%.4f)", path.name, self.monitor, value)
