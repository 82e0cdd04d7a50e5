"""Turn a pipeline's `data:` section into labelled examples, label names and a report."""

from __future__ import annotations

import numpy as np

from tfnlp.config.schema import DataConfig
from tfnlp.data.builtin import BUILTIN_DATASETS, builtin_dataset_path
from tfnlp.data.readers import read_texts
from tfnlp.data.records import DataError, LabelledTexts, LoadReport


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
    builtin = BUILTIN_DATASETS.get(config.source)
    if builtin is not None:
        path = builtin_dataset_path(config.source)
        examples, report = read_texts(
            path,
            format="csv",
            text_column=config.text_column or builtin.text_column,
            label_column=config.label_column or builtin.label_column,
            weight_column=config.weight_column,
            on_bad_row=config.on_bad_row or "skip",
        )
        report.source = f"{config.source} ({path})"
        labels = list(config.labels or builtin.labels)
    else:
        examples, report = read_texts(
            config.source,
            format=config.format,
            text_column=config.text_column or "text",
            label_column=config.label_column or "label",
            weight_column=config.weight_column,
            on_bad_row=config.on_bad_row or "error",
        )
        labels = list(config.labels) if config.labels else sorted(set(examples.labels))
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
