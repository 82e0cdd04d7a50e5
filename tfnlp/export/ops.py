"""Op portability: which ops an exported SavedModel needs, and which runtimes provide them.

Stock TF-Serving (≥ 2.2) links TensorFlow core and tensorflow-text's op library, nothing else.
Every op in the graph and in its function library is classified as `core`,
`tensorflow-text` or `unknown` (a custom op no stock runtime has).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tfnlp.atomic import write_json

CORE = "core"
TEXT = "tensorflow-text"
UNKNOWN = "unknown"

# Lists the ops in a fresh interpreter, where no op library loaded before tfnlp's backend.
_CATALOGUE = """
import json
from tfnlp.backend import CORE_OPS, registered_op_names
import tensorflow_text  # noqa: F401
print(json.dumps({"core": sorted(CORE_OPS), "text": sorted(registered_op_names() - CORE_OPS)}))
"""


@dataclass
class OpReport:
    """Ops of one SavedModel by provider.

    Attributes:
        ops: op name → `core`, `tensorflow-text` or `unknown`.
        functions: the number of functions in the graph's library.
    """

    ops: dict[str, str] = field(default_factory=dict)
    functions: int = 0

    def by_provider(self, provider: str) -> list[str]:
        return sorted(op for op, where in self.ops.items() if where == provider)

    @property
    def servable(self) -> bool:
        """True when stock TF-Serving (TensorFlow + tensorflow-text ops) can run the graph."""
        return not self.by_provider(UNKNOWN)

    @property
    def portable(self) -> bool:
        """True when any TensorFlow runtime can run the graph (core ops only)."""
        return self.servable and not self.by_provider(TEXT)

    def summary(self) -> str:
        """A few lines for people: counts, then the non-core ops by name."""
        lines = [
            f"{len(self.ops)} distinct ops in the graph and {self.functions} library functions: "
            f"{len(self.by_provider(CORE))} TensorFlow core, {len(self.by_provider(TEXT))} "
            f"tensorflow-text, {len(self.by_provider(UNKNOWN))} unknown."
        ]
        if self.by_provider(TEXT):
            lines.append("tensorflow-text ops (linked into stock TF-Serving; Python needs "
                         "`import tensorflow_text`): " + ", ".join(self.by_provider(TEXT)))
        if self.by_provider(UNKNOWN):
            lines.append("NOT servable, unknown ops: " + ", ".join(self.by_provider(UNKNOWN)))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "functions": self.functions,
            "core": self.by_provider(CORE),
            "tensorflow_text": self.by_provider(TEXT),
            "unknown": self.by_provider(UNKNOWN),
            "servable": self.servable,
            "portable": self.portable,
        }


@functools.lru_cache(maxsize=1)
def op_catalogue() -> tuple[frozenset[str], frozenset[str]]:
    """(TensorFlow core ops, tensorflow-text ops), listed once per installation and kept in
    the user's cache directory. Listed in this process when TensorFlow's own ops were noted
    before any op library loaded (`tfnlp.backend.CORE_OPS`), else by a fresh process (~8 s:
    a second TensorFlow start-up).

    Raises:
        RuntimeError: the helper process failed (its stderr tail is in the message).
    """
    cached = _catalogue_cache()
    try:
        listed = json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        listed = _list_ops_in_this_process() or _list_ops_in_a_fresh_process()
        with contextlib.suppress(OSError):  # a read-only home: list again next time
            write_json(cached, listed)
    return frozenset(listed["core"]), frozenset(listed["text"])


def _catalogue_cache() -> Path:
    """One file per interpreter and TensorFlow / tensorflow-text version pair."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "none"

    key = f"{sys.executable}|{installed('tensorflow')}|{installed('tensorflow-text')}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "tfnlp" / f"op_catalogue-{digest}.json"


def _list_ops_in_this_process() -> dict | None:
    """The catalogue from the ops noted before any op library loaded (`tfnlp.backend`) and
    from tensorflow-text's own libraries; None when another library loaded first."""
    from tfnlp.backend import CORE_OPS

    if CORE_OPS is None:
        return None
    import tensorflow_text

    # Its op libraries: python/ops/_*.so and python/metrics/_*.so (core/pybinds holds none).
    libraries = sorted((Path(tensorflow_text.__file__).parent / "python").glob("*/_*.so"))
    text = frozenset().union(*map(_library_ops, libraries))
    return {"core": sorted(CORE_OPS), "text": sorted(text - CORE_OPS)}


def _library_ops(path: Path) -> frozenset[str]:
    """The ops an op library registered (TensorFlow keeps each loaded library's list, by
    path, so loading it again only reads it)."""
    from tensorflow.python.client import pywrap_tf_session

    from tfnlp.backend import op_names

    handle = pywrap_tf_session.TF_LoadLibrary(str(path))
    try:
        return op_names(pywrap_tf_session.TF_GetOpList(handle))
    finally:
        pywrap_tf_session.TF_DeleteLibraryHandle(handle)


def _list_ops_in_a_fresh_process() -> dict:
    result = subprocess.run([sys.executable, "-c", _CATALOGUE], capture_output=True,
                            text=True, timeout=300,
                            env=_quiet_environment())
    if result.returncode != 0:
        raise RuntimeError(f"Could not list TensorFlow's ops: {result.stderr[-1000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _quiet_environment() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def graph_ops(saved_model_dir: str | Path) -> tuple[set[str], int]:
    """Every op type used in a SavedModel's graphs and function libraries (calls excluded).

    Returns:
        (op names, number of library functions).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    ops: set[str] = set()
    functions: set[str] = set()
    for meta_graph in saved_model.meta_graphs:
        library = meta_graph.graph_def.library
        functions |= {function.signature.name for function in library.function}
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in library.function:
            ops |= {node.op for node in function.node_def}
    # A node whose op is a library function is a call, not an op a runtime must provide.
    return ops - functions, len(functions)


def check_ops(saved_model_dir: str | Path) -> OpReport:
    """Classifies every op of the SavedModel at `saved_model_dir` by the runtime providing it.

    Example:
        >>> report = check_ops("saved_models/tweets_bilstm/1")
        >>> report.servable, report.by_provider("tensorflow-text")
    """
    core, text = op_catalogue()
    ops, functions = graph_ops(saved_model_dir)
    return OpReport(
        ops={op: CORE if op in core else TEXT if op in text else UNKNOWN for op in ops},
        functions=functions,
    )
