"""Phase timings and peak memory of a run, written to `metrics.json` (`timings`, `memory`).

A phase nested in another (the TF-IDF baseline inside evaluation) is charged to itself only:
the outer phase reports its own time without the inner one, so the phases add up to the
whole. Code that runs inside a phase of the current run can open a sub-phase with `phase()`
without being handed the timer.

Example:
    >>> timings = PhaseTimings()
    >>> with timings.phase("evaluation"):
    ...     with phase("baseline"):
    ...         pass
    >>> sorted(timings.seconds)
    ['baseline', 'evaluation']
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from pathlib import Path

_ACTIVE: contextvars.ContextVar[PhaseTimings | None] = contextvars.ContextVar(
    "tfnlp_phase_timings", default=None)


class PhaseTimings:
    """Seconds per named phase, nested phases charged to themselves only."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._open: list[list] = []  # [name, start, seconds spent in nested phases]

    @contextlib.contextmanager
    def phase(self, name: str):
        """Times the block as `name` (added to it if the phase ran before)."""
        token = _ACTIVE.set(self)
        self.seconds.setdefault(name, 0.0)  # phases are listed in the order they started
        entry = [name, time.perf_counter(), 0.0]
        self._open.append(entry)
        try:
            yield
        finally:
            self._open.pop()
            _ACTIVE.reset(token)
            elapsed = time.perf_counter() - entry[1]
            self.add(name, elapsed - entry[2])
            if self._open:
                self._open[-1][2] += elapsed

    def add(self, name: str, seconds: float) -> None:
        """Charges `seconds` to `name` (for phases measured elsewhere, e.g. by a callback)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def to_dict(self) -> dict[str, float]:
        """`{"<phase>_s": seconds, …, "total_s": process start to now}` rounded to 0.1 ms."""
        out = {f"{name}_s": round(seconds, 4) for name, seconds in self.seconds.items()}
        total = process_seconds()
        if total is not None:
            out["total_s"] = round(total, 4)
        return out

    def summary(self) -> str:
        """One line: each phase's seconds, then the total."""
        parts = [f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items()]
        total = process_seconds()
        return "timings: " + ", ".join(parts) + (f"; total {total:.1f} s" if total else "")


@contextlib.contextmanager
def phase(name: str):
    """A sub-phase of the run being timed in this context (does nothing outside a run)."""
    timings = _ACTIVE.get()
    if timings is None:
        yield
        return
    with timings.phase(name):
        yield


def process_seconds() -> float | None:
    """Seconds since this process started (None where /proc is not there to tell)."""
    try:
        with open("/proc/self/stat") as file:
            # Field 22 (after the parenthesised command name) is the start time in clock ticks.
            start_ticks = int(file.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def reset_peak_rss() -> bool:
    """Resets this process's peak RSS (Linux `clear_refs`); False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM) in MB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
