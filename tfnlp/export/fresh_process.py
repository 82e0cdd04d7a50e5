"""What every serve-check shares: the result row, the tolerance and the fresh process."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

# float32 softmax outputs of the same graph and weights: anything above this is a real skew.
TOLERANCE = 1e-5


@dataclass
class CheckResult:
    """One row of the serve-check table."""

    name: str
    passed: bool
    detail: str


def _quiet_env() -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)  # the fresh process must not even be able to import tfnlp
    return env


def run_quietly(command: list[str], timeout: int = 600, stdin: str | None = None):
    """Runs `command` in a fresh process that cannot import tfnlp; output captured."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=_quiet_env(), input=stdin)


def tail(text: str) -> str:
    """The last non-empty line of `text` (at most 200 characters): an error's gist."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
