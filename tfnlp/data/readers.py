"""Readers for CSV, JSONL and TFRecord files with named text/label columns.

A bad row (missing text or label, an unparseable line) is either skipped and recorded in the
`LoadReport` (`on_bad_row="skip"`) or raises a `DataError` naming the file and line
(`on_bad_row="error"`). Nothing is dropped without a trace.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Literal

from tfnlp.data.records import DataError, LabelledTexts, LoadReport

OnBadRow = Literal["error", "skip"]
_REPLACEMENT = "\ufffd"
# A long document is a valid row, but Python's csv module refuses any field over 128 KiB
# unless told otherwise (the preprocessing truncates each text to `sequence_length` anyway).
_CSV_FIELD_LIMIT = 2**31 - 1


def allow_long_csv_fields() -> None:
    """Lifts the csv module's process-wide 128 KiB field limit; every CSV reader calls it."""
    csv.field_size_limit(_CSV_FIELD_LIMIT)


def read_texts(
    path: str | Path,
    *,
    format: str = "auto",
    text_column: str = "text",
    label_column: str = "label",
    weight_column: str | None = None,
    on_bad_row: OnBadRow = "error",
) -> tuple[LabelledTexts, LoadReport]:
    r"""Reads labelled texts from a CSV, JSONL or TFRecord file.

    Args:
        path: the file to read.
        format: "csv", "jsonl", "tfrecord" or "auto" (from the file extension).
        text_column: the column (CSV header, JSON key, tf.train.Example feature) with the text.
        label_column: the column with the label (strings or integers).
        weight_column: optional column with a per-example weight.
        on_bad_row: "error" stops at the first bad row; "skip" records and skips it.

    Returns:
        The examples and a `LoadReport`.

    Raises:
        DataError: the file is missing, has no such column, or has a bad row under "error".

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     path = Path(directory) / "data.csv"
        ...     _ = path.write_text("text,label\ngood day,pos\n,neg\nbad day,neg\n")
        ...     examples, report = read_texts(path, on_bad_row="skip")
        >>> examples.texts, examples.labels
        (['good day', 'bad day'], ['pos', 'neg'])
        >>> report.skipped
        [{'line': 3, 'reason': "missing text in column 'text'"}]
    """
    collector = _collect(path, format, _Collector(
        path, text_column, label_column, weight_column, on_bad_row))
    return collector.result()


def read_rows(
    path: str | Path, *, format: str = "auto", text_column: str = "text",
    label_column: str = "label", weight_column: str | None = None,
    on_bad_row: OnBadRow = "error",
) -> tuple[list[dict], LoadReport]:
    """Like `read_texts`, but returns each valid row whole (every column, as read).

    The same rows are valid as for `read_texts`: `tfnlp shard` keeps every column of them.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     path = Path(directory) / "data.csv"
        ...     _ = path.write_text("id,text,label\\n7,good day,pos\\n8,,neg\\n")
        ...     rows, report = read_rows(path, on_bad_row="skip")
        >>> rows, report.rows_skipped
        ([{'id': '7', 'text': 'good day', 'label': 'pos'}], 1)
    """
    collector = _Collector(path, text_column, label_column, weight_column, on_bad_row)
    collector.rows = []
    return _collect(path, format, collector).rows, collector.result()[1]


def _collect(path: str | Path, format: str, collector: _Collector) -> _Collector:
    path = collector.path = Path(path)
    collector.report.source = str(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file. Check `data.source` in the pipeline.")
    if format == "auto":
        format = infer_format(path)
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "tfrecord": _read_tfrecord}.get(format)
    if reader is None:
        raise DataError(
            f"{path}: unknown format {format!r}; set `data.format` to csv, jsonl or tfrecord."
        )
    reader(path, collector)
    return collector


def decode_leniently(raw: bytes) -> tuple[str, int]:
    r"""Decodes UTF-8, replacing invalid sequences; returns the text and how many were replaced.

    Example:
        >>> decode_leniently(b"caf\xc3 ok")
        ('caf\ufffd ok', 1)
    """
    text = raw.decode("utf-8", errors="replace")
    # U+FFFD already present in the file (as valid UTF-8) is not a replacement we made.
    replaced = text.count(_REPLACEMENT) - raw.count(_REPLACEMENT.encode("utf-8"))
    return text, replaced


def _decode_file(path: Path) -> tuple[str, int]:
    """`decode_leniently` of a whole file, without the byte-order mark Excel and Notepad put
    at the start of UTF-8 files (it is not part of the first column's name)."""
    return decode_leniently(path.read_bytes().removeprefix(codecs.BOM_UTF8))


def infer_format(path: str | Path) -> str:
    """csv, jsonl or tfrecord, from the file name (`data.format: auto`)."""
    path = Path(path)
    suffixes = "".join(path.suffixes).lower()
    endings = ((".csv", "csv"), (".tsv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl"),
               (".tfrecord", "tfrecord"), (".tfrecords", "tfrecord"))
    for ending, format in endings:
        if suffixes.endswith(ending) or path.suffix.lower() == ending:
            return format
    raise DataError(
        f"{path}: cannot tell the format from the extension; set `data.format` "
        "to csv, jsonl or tfrecord."
    )


class _Collector:
    """Accumulates rows, validating each and applying the bad-row policy."""

    def __init__(self, path, text_column, label_column, weight_column, on_bad_row):
        self.path = path
        self.text_column = text_column
        self.label_column = label_column
        self.weight_column = weight_column
        self.on_bad_row = on_bad_row
        self.report = LoadReport(source=str(path))
        self.texts: list[str] = []
        self.labels: list[str] = []
        self.weights: list[float] = []
        self.rows: list[dict] | None = None  # whole valid rows, for `read_rows` only

    def require_columns(self, columns, where: str) -> None:
        wanted = [self.text_column, self.label_column] + (
            [self.weight_column] if self.weight_column else []
        )
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(
                f"{self.path}: {where} has no column {missing[0]!r} (found: "
                f"{', '.join(map(str, columns)) or 'none'}). Set `data.text_column` / "
                "`data.label_column` to the right names."
            )

    def bad(self, line: int, reason: str) -> None:
        self.report.rows_read += 1
        if self.on_bad_row == "error":
            raise DataError(
                f"{self.path}:{line}: {reason}. Fix the row, or set `data.on_bad_row: skip` "
                "to skip and count such rows."
            )
        self.report.skipped.append({"line": line, "reason": reason})

    def add(self, line: int, row: dict) -> None:
        if self.report.columns is None:
            self.report.columns = sorted(map(str, row))
        text, label = row.get(self.text_column), row.get(self.label_column)
        if text is None or (isinstance(text, str) and not text.strip()):
            return self.bad(line, f"missing text in column {self.text_column!r}")
        if label is None or (isinstance(label, str) and not label.strip()):
            return self.bad(line, f"missing label in column {self.label_column!r}")
        if not isinstance(text, str):
            return self.bad(line, f"text in column {self.text_column!r} is not a string")
        weight = 1.0
        if self.weight_column:
            try:
                weight = float(row.get(self.weight_column))
            except (TypeError, ValueError):
                return self.bad(line, f"weight in column {self.weight_column!r} is not a number")
        self.report.rows_read += 1
        if self.rows is not None:
            self.rows.append(row)
            return
        self.texts.append(text)
        self.labels.append(str(label).strip())
        self.weights.append(weight)

    def result(self) -> tuple[LabelledTexts, LoadReport]:
        self.report.rows_kept = len(self.texts if self.rows is None else self.rows)
        weights = self.weights if self.weight_column else None
        return LabelledTexts(self.texts, self.labels, weights), self.report


def _read_csv(path: Path, collector: _Collector) -> None:
    text, collector.report.replaced_characters = _decode_file(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    allow_long_csv_fields()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty; a CSV needs a header row.") from None
    except csv.Error as error:
        raise DataError(f"{path}:1: cannot parse the header row ({error}).") from None
    collector.require_columns(header, "the header row")
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            collector.bad(line, f"unparseable CSV ({error})")
            continue
        if not fields:
            continue  # a blank line is not a row
        if len(fields) != len(header):
            collector.bad(line, f"expected {len(header)} fields, found {len(fields)}")
            continue
        collector.add(line, dict(zip(header, fields)))


def _read_jsonl(path: Path, collector: _Collector) -> None:
    text, collector.report.replaced_characters = _decode_file(path)
    checked_columns = False
    # Only "\n" ends a JSON line: `splitlines` would also split at U+2028, U+2029 and U+0085,
    # which JSON writers leave raw inside strings.
    for line, raw_line in enumerate(text.split("\n"), start=1):
        if not raw_line.strip():
            continue
        try:
            row = json.loads(raw_line)
        except json.JSONDecodeError as error:
            collector.bad(line, f"unparseable JSON ({error.msg})")
            continue
        except RecursionError:
            collector.bad(line, "unparseable JSON (nested too deeply)")
            continue
        except ValueError as error:  # e.g. an integer over Python's 4,300-digit limit
            collector.bad(line, f"unparseable JSON ({str(error)[:200]})")
            continue
        if not isinstance(row, dict):
            collector.bad(line, "a JSON line must be an object")
            continue
        if not checked_columns:
            collector.require_columns(list(row), f"line {line}")
            checked_columns = True
        collector.add(line, row)


def _read_tfrecord(path: Path, collector: _Collector) -> None:
    from tfnlp.backend import tf

    # "line" is the 1-based record number for TFRecord files.
    records = tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    line, consumed, size = 0, 0, path.stat().st_size
    while True:
        line += 1
        try:
            record = next(records)
        except StopIteration:
            if consumed != size:  # TensorFlow reads a cut-off header as a clean end
                collector.bad(line, "truncated record (the file ends inside a record header)")
            break
        except tf.errors.DataLossError as error:
            collector.bad(line, f"truncated or corrupt record ({error.message.splitlines()[0]})")
            break  # nothing after a corrupt record can be framed
        consumed += 16 + len(record)  # length (8), its CRC (4), data, data CRC (4)
        try:
            example = tf.train.Example.FromString(record)
        except Exception:  # protobuf raises its own DecodeError type
            collector.bad(line, "not a tf.train.Example")
            continue
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            if values:
                value = values[0]
                if isinstance(value, bytes):
                    value, replaced = decode_leniently(value)
                    collector.report.replaced_characters += replaced
                row[name] = value
        collector.add(line, row)
