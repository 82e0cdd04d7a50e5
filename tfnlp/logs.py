"""Logging for runs: one readable line per event to stderr and to the run's log file."""

from __future__ import annotations

import logging
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def configure_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Sends the `tfnlp` logger to stderr and, when given, appends to `log_file`."""
    logger = logging.getLogger("tfnlp")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    _add(logger, logging.StreamHandler())
    if log_file is not None:
        add_log_file(log_file)


def add_log_file(log_file: str | Path) -> logging.Handler:
    """Appends the `tfnlp` logger's lines to `log_file` too; returns the handler (to remove)."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    # delay: the file appears with the first line, so a command refused before it logs
    # anything (e.g. by a run directory's lock) leaves nothing there.
    return _add(logging.getLogger("tfnlp"),
                logging.FileHandler(log_file, encoding="utf-8", delay=True))


def _add(logger: logging.Logger, handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    return handler
