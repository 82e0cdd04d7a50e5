"""`tfnlp predict --input`: a file of texts through a model, one output row per input row.

Rows stream through in batches (memory stays flat whatever the file's size), from a CSV, a
JSONL file or plain lines, local or remote (`tf.io.gfile`), or stdin. A row without a text is
never dropped: it becomes an error row naming its line, or stops the run
(`--on-bad-row error`). A file output is written to a temporary name and renamed when
complete, so it is never half-written.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnlp.atomic import is_remote
from tfnlp.data.readers import allow_long_csv_fields, decode_leniently
from tfnlp.data.records import DataError

INPUT_FORMATS = ("auto", "csv", "jsonl", "lines")
OUTPUT_FORMATS = ("jsonl", "csv")


class RunPredictor:
    """A classification run's best checkpoint, in this process, as `labels` +
    `probabilities(texts)`."""

    def __init__(self, run_dir: str | Path):
        from tfnlp.training.trained import load_trained

        trained = load_trained(run_dir)
        self.labels = getattr(trained.task, "labels", None)
        if not self.labels:
            raise ValueError(f"{run_dir} is a `task: {trained.config.task}` run; `tfnlp predict` "
                             "classifies texts (use `tfnlp generate` for a language model).")
        self.model = trained.model

    def probabilities(self, texts: list[str]) -> np.ndarray:
        from tfnlp.backend import tf

        logits = self.model(tf.constant(list(texts)), training=False)
        return tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()

    def predict_texts(self, texts: list[str]) -> list[dict]:
        from tfnlp.serving import prediction_rows

        return prediction_rows(texts, self.probabilities(texts), self.labels)


def load_predictor(path: str | Path):
    """A predictor for an export, a run directory or a compressed `.tflite`.

    Raises:
        FileNotFoundError: none of those is at `path`.
    """
    from tfnlp.backend import tf
    from tfnlp.compression.tflite_predictor import TFLitePredictor, is_tflite_path
    from tfnlp.serving import ExportPredictor

    if is_tflite_path(path):
        return TFLitePredictor(path)
    if (Path(path) / "config.yaml").is_file():
        return RunPredictor(path)
    if is_remote(path) and tf.io.gfile.exists(f"{path}/config.yaml"):  # a remote run
        from tfnlp.training.remote_run import RunMirror

        with RunMirror(str(path), "predict", "reader") as run:
            return RunPredictor(run.local)  # everything it needs is loaded by now
    return ExportPredictor(path)


@dataclass
class Row:
    """One input row: its 1-based line, its fields, and its text or why it has none."""

    line: int
    fields: dict
    text: str | None
    error: str | None = None


@dataclass
class PredictionReport:
    rows: int
    bad_rows: int
    seconds: float

    @property
    def texts_per_second(self) -> float:
        return (self.rows - self.bad_rows) / max(self.seconds, 1e-9)

    def summary(self) -> str:
        return (f"predicted {self.rows - self.bad_rows:,d} texts in {self.seconds:.1f} s "
                f"({self.texts_per_second:,.0f} texts/s); {self.bad_rows:,d} bad rows")


def _lines(path: str):
    """Decoded lines of `path` (or stdin for "-"), invalid UTF-8 replaced as training does."""
    if path == "-":
        yield from sys.stdin
        return
    from tfnlp.backend import tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no such input file; check `--input`.")
    with tf.io.gfile.GFile(path, "rb") as file:
        for raw in file:
            yield decode_leniently(raw)[0]


def read_rows(path: str, input_format: str = "auto", text_column: str = "text") -> Iterator[Row]:
    """The rows of a CSV (header row), JSONL or plain-lines input, with their line numbers.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "in.csv"
        >>> _ = path.write_text("id,text\\n1,good day\\n2,\\n")
        >>> [(row.line, row.text, row.error) for row in read_rows(str(path))]
        [(2, 'good day', None), (3, None, "missing text in column 'text'")]
    """
    if input_format == "auto":
        suffix = Path(path).suffix.lower()
        input_format = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix, "lines")
    if input_format == "csv":
        allow_long_csv_fields()
        reader = csv.DictReader(_lines(path))
        for fields in reader:
            text = fields.get(text_column)
            yield Row(reader.line_num, fields, text or None,
                      None if text else f"missing text in column {text_column!r}")
    elif input_format == "jsonl":
        for line, raw in enumerate(_lines(path), 1):
            if raw.strip():
                yield _json_row(line, raw, text_column)
    elif input_format == "lines":
        for line, raw in enumerate(_lines(path), 1):
            yield Row(line, {"text": raw.rstrip("\r\n")}, raw.rstrip("\r\n"))
    else:
        raise ValueError(f"`--input-format` must be one of {INPUT_FORMATS}. "
                         f"Received: --input-format={input_format!r}.")


def _json_row(line: int, raw: str, text_column: str) -> Row:
    try:
        fields = json.loads(raw)
    except json.JSONDecodeError as error:
        return Row(line, {}, None, f"not JSON ({error.msg})")
    if not isinstance(fields, dict):
        return Row(line, {}, None, "not a JSON object")
    text = fields.get(text_column)
    if not isinstance(text, str):
        return Row(line, fields, None, f"missing text in key {text_column!r}")
    return Row(line, fields, text)


class _Writer:
    """Output rows as JSONL or CSV (the input's fields, then label, probabilities, error)."""

    def __init__(self, file, output_format: str, labels: list[str]):
        self.file, self.format, self.labels = file, output_format, labels
        self.csv = None

    def write(self, row: Row, probabilities: np.ndarray | None) -> None:
        out = {**row.fields, "line": row.line}
        if probabilities is not None:
            out["label"] = self.labels[int(np.argmax(probabilities))]
            out["probabilities"] = {n: round(float(p), 6)
                                    for n, p in zip(self.labels, probabilities)}
        else:
            out["error"] = row.error
        if self.format == "jsonl":
            self.file.write(json.dumps(out, ensure_ascii=False) + "\n")
            return
        flat = {k: v for k, v in out.items() if k != "probabilities"}
        flat.update({f"p_{n}": p for n, p in out.get("probabilities", {}).items()})
        if self.csv is None:  # the first row fixes the columns: input fields, then ours
            names = [*row.fields, "line", "label", *(f"p_{n}" for n in self.labels), "error"]
            self.csv = csv.DictWriter(self.file, fieldnames=names, extrasaction="ignore")
            self.csv.writeheader()
        self.csv.writerow(flat)


@contextlib.contextmanager
def _output(path: str | None):
    """stdout, or a temporary file renamed onto `path` only once everything is written."""
    if path is None or path == "-":
        yield sys.stdout
        return
    from tfnlp.backend import tf

    partial = f"{path}.partial"
    try:
        with tf.io.gfile.GFile(partial, "w") as file:
            yield file
    except BaseException:
        if tf.io.gfile.exists(partial):  # GFile creates the file on its first write
            tf.io.gfile.remove(partial)  # a stopped run leaves no output at all
        raise
    tf.io.gfile.rename(partial, path, overwrite=True)


def predict_file(predictor, input_path: str, output_path: str | None = None, *,
                 input_format: str = "auto", output_format: str = "jsonl",
                 text_column: str = "text", batch_size: int = 256,
                 on_bad_row: str = "report", progress: bool = True) -> PredictionReport:
    """Streams `input_path` through `predictor` in batches; one output row per input row.

    Args:
        predictor: a `tfnlp.serving.Predictor` (or anything with `labels` and
            `probabilities(texts)`).
        input_path: a CSV/JSONL/text file (local or any `tf.io.gfile` path), or "-" (stdin).
        output_path: the output file, or None / "-" for stdout.
        input_format, text_column: how to read the rows (see `read_rows`).
        output_format: "jsonl" or "csv".
        batch_size: texts per model call.
        on_bad_row: "report" writes an error row naming the line; "error" stops there.
        progress: a Keras progress bar on stderr (when stderr is a terminal).

    Raises:
        DataError: a bad row under `on_bad_row="error"`, naming the file and line.
    """
    from tfnlp.backend import keras

    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"`--format` must be one of {OUTPUT_FORMATS}. "
                         f"Received: --format={output_format!r}.")
    start, rows, bad = time.perf_counter(), 0, 0
    bar = keras.utils.Progbar(None, unit_name="row") if progress and sys.stderr.isatty() else None
    with _output(output_path) as file:
        writer = _Writer(file, output_format, predictor.labels)
        batch: list[Row] = []
        for row in read_rows(input_path, input_format, text_column):
            rows += 1
            if row.error is not None:
                if on_bad_row == "error":
                    raise DataError(f"{input_path}:{row.line}: {row.error}; fix the row or "
                                    "pass --on-bad-row report to write an error row instead.")
                bad += 1
            batch.append(row)
            if len(batch) >= batch_size:
                _flush(batch, predictor, writer, bar)
        _flush(batch, predictor, writer, bar)
    return PredictionReport(rows, bad, time.perf_counter() - start)


def _flush(batch: list[Row], predictor, writer: _Writer, bar) -> None:
    """Predicts the batch's good rows and writes every row, in input order."""
    good = [row for row in batch if row.error is None]
    probabilities = iter(predictor.probabilities([row.text for row in good]) if good else [])
    for row in batch:
        writer.write(row, next(probabilities) if row.error is None else None)
    if bar is not None and batch:
        with contextlib.redirect_stdout(sys.stderr):  # stdout may be the output
            bar.add(len(batch))
    batch.clear()
