"""A run's side process: the end-of-run work that needs no TensorFlow (the TF-IDF baseline,
the matplotlib figures), done in a second process while this one evaluates and exports.

At a run's end this process is mostly tracing and saving TensorFlow graphs: Python on one
core. The baseline (scikit-learn) and the figures (matplotlib) are Python too, so a thread
would wait for the same interpreter lock; a spawned process (never forked: TensorFlow's
threads do not survive a fork) runs them on the other core instead. Only the functions and
their arguments cross over, pickled: the child imports scikit-learn and matplotlib, never
TensorFlow.

`submit` returns a future; `resolved(metrics)` waits for every submitted call and puts each
future's result where it stands in `metrics`. With `enabled=False` every call runs at once,
in this process, exactly as before. If the child cannot start or dies, the calls still
pending are run here, with a warning, so a run never loses its baseline or its figures.
`prestart` spawns the child early (`tfnlp train` does, before importing TensorFlow); the child
exits with this process, however this one ends.

Example:
    >>> import operator
    >>> with SideProcess(enabled=False) as side:
    ...     metrics = {"sum": side.submit(operator.add, 2, 3)}
    ...     side.resolved(metrics)
    {'sum': 5}
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool

logger = logging.getLogger(__name__)


_prestarted: futures.ProcessPoolExecutor | None = None


def prestart() -> None:
    """Spawns the side process now and has it import scikit-learn and matplotlib; the next
    `SideProcess()` takes it over.

    `tfnlp train` calls this before importing TensorFlow, so the spawn and those imports run on
    the other core while this process imports TensorFlow, instead of at the run's end, where
    they held up its last step (`side_process_wait_s` 2.2-4.1 s once the export got faster).
    A process that never makes a `SideProcess` lets the child go at exit.
    """
    global _prestarted
    if _prestarted is None:
        _prestarted = _new_pool()
        _prestarted.submit(_import_libraries)


def _take_prestarted() -> futures.ProcessPoolExecutor | None:
    global _prestarted
    pool, _prestarted = _prestarted, None
    return pool


def _new_pool() -> futures.ProcessPoolExecutor:
    return futures.ProcessPoolExecutor(max_workers=1, initializer=_exit_with_parent,
                                       mp_context=multiprocessing.get_context("spawn"))


def _exit_with_parent() -> None:
    """In the child: ends it as soon as the parent dies. A parent killed outright (SIGKILL, the
    OOM killer) sends nothing, and the child, which holds both ends of its own work queue,
    would wait for work forever, 151 MB each (four were left behind by one CI run)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def wait_for_the_parent():
        multiprocessing.connection.wait([parent.sentinel])  # readable once the parent is gone
        os._exit(0)

    threading.Thread(target=wait_for_the_parent, name="tfnlp-side-watch", daemon=True).start()


def _import_libraries() -> None:
    """What the side process's calls import (the baseline, the metrics, the figures)."""
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.pipeline  # noqa: F401

    from tfnlp.evaluation.plots import load_pyplot

    load_pyplot()


class SideProcess:
    """At most one spawned worker: the one `prestart` left ready, else one started by the
    first `submit`."""

    def __init__(self, enabled: bool = True):
        self._pool = (_take_prestarted() or _new_pool()) if enabled else None
        self._calls: list[tuple[futures.Future, object, tuple, dict]] = []
        self._results: dict[int, object] = {}  # id(future) -> result, once waited for

    def __enter__(self) -> SideProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, fn, /, *args, **kwargs) -> futures.Future:
        """Starts `fn(*args, **kwargs)`: in the child, or here and now when disabled."""
        if self._pool is not None:
            try:
                future = self._pool.submit(fn, *args, **kwargs)
                self._calls.append((future, fn, args, kwargs))
                return future
            except (BrokenProcessPool, OSError) as error:
                self._fall_back(error)
        done = futures.Future()
        done.set_result(fn(*args, **kwargs))
        return done

    def wait(self) -> None:
        """Blocks until every submitted call has finished (re-running here any the child
        could not); a call's own error is raised."""
        for future, fn, args, kwargs in self._calls:
            try:
                self._results[id(future)] = future.result()
            except BrokenProcessPool as error:
                self._fall_back(error)
                self._results[id(future)] = fn(*args, **kwargs)

    def resolved(self, metrics):
        """`metrics` with each future in it (in nested dicts and lists too) replaced by its
        result, after `wait`."""
        self.wait()
        return _resolve(metrics, self._results)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _fall_back(self, error: BaseException) -> None:
        if self._pool is None:
            return  # warned already
        logger.warning("the side process failed (%s: %s); finishing its work in this process",
                       type(error).__name__, error)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None


def _resolve(value, results: dict[int, object]):
    if isinstance(value, futures.Future):
        return results[id(value)] if id(value) in results else value.result()
    if isinstance(value, dict):
        return {key: _resolve(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, results) for item in value]
    return value
