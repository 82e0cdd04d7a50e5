"""Plain texts for language modelling: from any source the `data:` section reads, split by text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from tfnlp.config.schema import DataConfig
from tfnlp.data.builtin import BUILTIN_DATASETS
from tfnlp.data.loading import limit_indices, load_examples
from tfnlp.data.readers import allow_long_csv_fields, decode_leniently
from tfnlp.data.records import DataError


def read_corpus(config: DataConfig, seed: int = 42) -> list[str]:
    r"""The non-empty texts of the configured source, in file order (`limit` applied).

    Sources: a built-in dataset (its text column), a `.txt` file (one text per non-empty
    line), or a CSV / JSONL file (`data.text_column`, default "text"; no label needed).

    Raises:
        DataError: a missing file, a missing column, an unsupported format or no texts.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     path = Path(directory) / "corpus.txt"
        ...     _ = path.write_text("first text\n\n  second text \n")
        ...     read_corpus(DataConfig(source=str(path)))
        ['first text', 'second text']
    """
    if config.source in BUILTIN_DATASETS:
        examples, _, _ = load_examples(config, seed=seed)
        texts = list(examples.texts)
    else:
        path = Path(config.source)
        if not path.is_file():
            raise DataError(f"{path}: no such data file. Check `data.source` in the pipeline.")
        format = config.format
        if format == "auto":
            format = {".txt": "text", ".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl",
                      ".json": "jsonl"}.get(path.suffix.lower(), "unknown")
        column = config.text_column or "text"
        raw, _ = decode_leniently(path.read_bytes())
        if format == "text":
            texts = raw.splitlines()
        elif format == "csv":
            dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
            allow_long_csv_fields()
            rows = csv.DictReader(raw.splitlines(), dialect=dialect)
            if column not in (rows.fieldnames or []):
                raise DataError(
                    f"{path}: no column {column!r} (found {rows.fieldnames}); set "
                    "`data.text_column`."
                )
            texts = [row[column] or "" for row in rows]
        elif format == "jsonl":
            texts = []
            for number, line in enumerate(raw.splitlines(), 1):
                if line.strip():
                    try:
                        texts.append(str(json.loads(line).get(column) or ""))
                    except (ValueError, AttributeError):
                        raise DataError(f"{path}:{number}: not a JSON object.") from None
        else:
            raise DataError(
                f"{path}: language models read .txt, .csv or .jsonl files; set `data.format` "
                f"to csv or jsonl. Received: data.format={config.format!r}."
            )
        texts = [t for t in (t.strip() for t in texts) if t]
        if config.limit is not None and config.limit < len(texts):
            texts = [texts[i] for i in limit_indices(len(texts), config.limit, seed)]
    if not texts:
        raise DataError(f"{config.source}: no texts found; check `data.source`.")
    return texts


def split_corpus(
    texts: list[str], validation_fraction: float, test_fraction: float, seed: int = 42
) -> dict[str, list[str]]:
    """A seeded split of whole texts into train/validation/test (no text spans two splits).

    Raises:
        DataError: the fractions leave no training texts.

    Example:
        >>> splits = split_corpus([f"text {i}" for i in range(10)], 0.2, 0.1, seed=0)
        >>> {name: len(texts) for name, texts in splits.items()}
        {'test': 1, 'validation': 2, 'train': 7}
    """
    if validation_fraction + test_fraction >= 1.0:
        raise DataError(
            "`data.validation_fraction` + `data.test_fraction` must be below 1. Received: "
            f"{validation_fraction} + {test_fraction}."
        )
    order = np.random.default_rng(seed).permutation(len(texts))
    n_test = int(round(len(texts) * test_fraction))
    n_validation = int(round(len(texts) * validation_fraction))
    picked = {
        "test": order[:n_test],
        "validation": order[n_test:n_test + n_validation],
        "train": order[n_test + n_validation:],
    }
    return {name: [texts[i] for i in sorted(ids)] for name, ids in picked.items()}
