"""Turn a pipeline's `data:` section into labelled examples, label names and a report."""

from __future__ import annotations

import numpy as np

from tfnlp.config.schema import DataConfig
from tfnlp.data.builtin import BUILTIN_DATASETS, builtin_dataset_path
from tfnlp.data.readers import read_texts
from tfnlp.data.records import DataError, LabelledTexts, LoadReport
from tfnlp.data.sharding import (
    is_pattern,
    matching_files,
    merge_reports,
    require_same_columns,
)


def limit_indices(total: int, limit: int, seed: int) -> list[int]:
    """The `limit` examples a quick run uses: a seeded random subset, kept in file order.

    Data files are often sorted by label (the tweets CSV is), so the literal first N rows
    would hold one class.

    Example:
        >>> limit_indices(10, 3, seed=0)
        [5, 6, 9]
    """
    chosen = np.random.default_rng(seed).choice(total, size=limit, replace=False)
    return sorted(chosen.tolist())


def reader_options(config: DataConfig) -> dict:
    """The `read_texts` / `read_rows` keyword arguments for `data:`, with the defaults of a
    built-in dataset or of the user's files."""
    builtin = BUILTIN_DATASETS.get(config.source)
    return {"format": config.format, "weight_column": config.weight_column,
            "text_column": config.text_column or (builtin.text_column if builtin else "text"),
            "label_column": config.label_column or (builtin.label_column if builtin else "label"),
            "on_bad_row": config.on_bad_row or ("skip" if builtin else "error")}


def read_source(config: DataConfig, reader=read_texts):
    """Reads `data.source` with `reader` (`read_texts`, or `read_rows` for whole rows): a
    built-in dataset, one file, or every file a pattern (`shards/train-*`) matches.

    Returns:
        (what `reader` returns for the rows of every file, in order; one `LoadReport`).

    Raises:
        DataError: as `read_texts`, or a pattern's files do not all have the same columns.
    """
    builtin = BUILTIN_DATASETS.get(config.source)
    options = reader_options(config)
    if builtin is not None:
        path = builtin_dataset_path(config.source)
        examples, report = reader(path, **{**options, "format": "csv"})
        report.source = f"{config.source} ({path})"
        return examples, report
    if not is_pattern(config.source):
        return reader(config.source, **options)
    parts = [reader(path, **options) for path in matching_files(config.source)]
    for _, report in parts[1:]:
        require_same_columns(report, parts[0][1], config.source)
    rows = [part for part, _ in parts]
    joined = LabelledTexts.concatenate(rows) if reader is read_texts else sum(rows, [])
    return joined, merge_reports(config.source, [report for _, report in parts])


def load_examples(
    config: DataConfig, seed: int = 42
) -> tuple[LabelledTexts, list[str], LoadReport]:
    """Reads the configured source, applies `limit` and fixes the label order.

    Returns:
        (examples, label names in id order, load report).

    Raises:
        DataError: unreadable source, bad rows under `on_bad_row: error`, unknown labels.

    Example:
        >>> examples, labels, report = load_examples(DataConfig(source="tweets", limit=100))
        >>> len(examples), labels, report.rows_kept
        (100, ['negative', 'neutral', 'positive'], 38158)
    """
    examples, report = read_source(config)
    builtin = BUILTIN_DATASETS.get(config.source)
    if config.labels or builtin:
        labels = list(config.labels or builtin.labels)
    else:
        labels = sorted(set(examples.labels))
    if config.limit is not None and config.limit < len(examples):
        examples = examples.take(limit_indices(len(examples), config.limit, seed))
    unknown = sorted(set(examples.labels) - set(labels))
    if unknown:
        raise DataError(
            f"{report.source}: labels {unknown} are not in `data.labels` ({labels}); add them "
            "to `data.labels` or fix the data."
        )
    present = sorted(set(examples.labels))
    if len(present) < 2:
        raise DataError(
            f"{report.source}: found {len(present)} label(s) {present}; classification needs at "
            "least 2. Check `data.label_column` (and `data.limit`)."
        )
    return examples, labels, report
