"""In-memory labelled texts and the report of how they were read."""

from __future__ import annotations

from dataclasses import dataclass, field


class DataError(ValueError):
    """A data file that cannot be read as configured (names the file and line)."""


@dataclass
class LabelledTexts:
    """Texts with their string labels (and optional per-example weights), in file order.

    Example:
        >>> examples = LabelledTexts(["a", "b", "c"], ["x", "y", "x"])
        >>> len(examples), examples.take([2, 0])
        (3, LabelledTexts(texts=['c', 'a'], labels=['x', 'x'], weights=None))
    """

    texts: list[str]
    labels: list[str]
    weights: list[float] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @staticmethod
    def concatenate(parts: list[LabelledTexts]) -> LabelledTexts:
        """The parts one after another (weights kept only when every part has them)."""
        weighted = all(part.weights is not None for part in parts)
        return LabelledTexts(
            texts=[text for part in parts for text in part.texts],
            labels=[label for part in parts for label in part.labels],
            weights=[w for part in parts for w in part.weights] if weighted else None,
        )

    def take(self, indices) -> LabelledTexts:
        """The examples at `indices`, in that order."""
        return LabelledTexts(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            weights=None if self.weights is None else [self.weights[i] for i in indices],
        )


@dataclass
class LoadReport:
    """What reading a source did: rows read and kept, rows skipped (with why), bytes replaced.

    Example:
        >>> report = LoadReport("data.csv", rows_read=3, rows_kept=2,
        ...                     skipped=[{"line": 3, "reason": "missing text"}])
        >>> report.summary()
        'data.csv: read 3 rows, kept 2, skipped 1, replaced 0 invalid UTF-8 sequences with U+FFFD'
    """

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    # Invalid UTF-8 sequences replaced by U+FFFD while decoding leniently.
    replaced_characters: int = 0
    # One entry per skipped row: {"line": N, "reason": "..."}.
    skipped: list[dict] = field(default_factory=list)
    # For a pattern of several files: {"file", "rows_kept", "rows_skipped"} per file.
    files: list[dict] = field(default_factory=list)
    # The first row's column names (a CSV header, a JSON line's keys, an Example's features).
    columns: list[str] | None = None

    @property
    def rows_skipped(self) -> int:
        return len(self.skipped)

    def to_dict(self, max_listed: int = 100) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_skipped": self.rows_skipped,
            "replaced_characters": self.replaced_characters,
            "skipped_rows": self.skipped[:max_listed],
            **({"files": self.files} if self.files else {}),
        }

    def summary(self) -> str:
        return (
            f"{self.source}: read {self.rows_read} rows, kept {self.rows_kept}, "
            f"skipped {self.rows_skipped}, replaced {self.replaced_characters} invalid UTF-8 "
            "sequences with U+FFFD"
        )
