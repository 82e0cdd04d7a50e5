"""Data split into files: the files a `data.source` pattern names, and `tfnlp shard`.

A cluster reads its data fastest when every worker opens only its own files (tf.data's `FILE`
auto-sharding), which needs at least as many files as workers. `write_shards` turns any source
into N TFRecord files of `tf.train.Example`s, one feature per column under the column's name,
rows dealt round-robin so the shards differ in size by at most one row.

Nothing half-written is ever visible: each shard is written under a hidden temporary name and
renamed into place when complete, the manifest (`<name>.manifest.json`, row counts per shard)
is written last, and shards of an earlier run with another shard count are removed only after
the new set is in place.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from tfnlp.backend import keras, tf
from tfnlp.data.records import DataError, LoadReport

logger = logging.getLogger("tfnlp")

_PATTERN_CHARACTERS = "*?["


def is_pattern(source: str) -> bool:
    """True when `source` is a glob (`shards/train-*.tfrecord`), not one file.

    Example:
        >>> is_pattern("data/train-*.tfrecord"), is_pattern("data/train.csv")
        (True, False)
    """
    return any(character in source for character in _PATTERN_CHARACTERS)


def matching_files(pattern: str) -> list[str]:
    """The files `pattern` matches, sorted (so every worker and every run sees one order).

    Local paths and any filesystem TensorFlow has (`gs://`, `hdfs://`, `ram://`, and `s3://`
    with tensorflow-io) are globbed through `tf.io.gfile`.

    Raises:
        DataError: nothing matches, or the filesystem cannot be reached (said, not hung on).
    """
    try:
        files = sorted(tf.io.gfile.glob(pattern))
    except tf.errors.OpError as error:
        raise DataError(
            f"{pattern}: cannot list the files ({error.message.splitlines()[0][:200]}). Check "
            "that the storage is reachable from this machine and that you are signed in to it."
        ) from None
    files = [path for path in files if not tf.io.gfile.isdir(path)]
    if not files:
        raise DataError(
            f"{pattern}: matches no file. Check `data.source`; `tfnlp shard` writes shards "
            "named <name>-00000-of-0000N.tfrecord."
        )
    return files


def require_same_columns(report: LoadReport, first: LoadReport, pattern: str) -> None:
    """Raises `DataError` when a file of `pattern` has other columns than its first file."""
    if report.columns != first.columns:
        raise DataError(
            f"{report.source}: its columns {report.columns} differ from {first.source}'s "
            f"{first.columns}; every file that `data.source` ({pattern}) matches must have the "
            "same columns. Fix or remove the odd file, or narrow the pattern."
        )


def merge_reports(pattern: str, reports: list[LoadReport]) -> LoadReport:
    """One report for several files: totals, and each skipped row with its file.

    Example:
        >>> merged = merge_reports("d-*", [
        ...     LoadReport("d-0", rows_read=2, rows_kept=2),
        ...     LoadReport("d-1", rows_read=2, rows_kept=1, skipped=[{"line": 2, "reason": "x"}])])
        >>> merged.source, merged.rows_kept, merged.files[1]
        ('d-* (2 files)', 3, {'file': 'd-1', 'rows_kept': 1, 'rows_skipped': 1})
        >>> merged.skipped
        [{'file': 'd-1', 'line': 2, 'reason': 'x'}]
    """
    merged = LoadReport(source=f"{pattern} ({len(reports)} files)", columns=reports[0].columns)
    for report in reports:
        merged.rows_read += report.rows_read
        merged.rows_kept += report.rows_kept
        merged.replaced_characters += report.replaced_characters
        merged.skipped += [{"file": report.source, **row} for row in report.skipped]
        merged.files.append({"file": report.source, "rows_kept": report.rows_kept,
                             "rows_skipped": report.rows_skipped})
    return merged


def default_shard_name(source: str) -> str:
    """The shards' name for a source: its file name without extensions or pattern characters.

    Example:
        >>> default_shard_name("tweets"), default_shard_name("data/reviews.jsonl")
        ('tweets', 'reviews')
        >>> default_shard_name("in/part-*.csv")
        'part'
    """
    name = source.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    for character in _PATTERN_CHARACTERS:
        name = name.split(character, 1)[0]
    return name.strip("-_") or "data"


def shard_name(name: str, index: int, count: int) -> str:
    """`train-00003-of-00008.tfrecord`: the naming TFDS and Beam use, which sorts in order.

    Example:
        >>> shard_name("tweets", 3, 8)
        'tweets-00003-of-00008.tfrecord'
    """
    return f"{name}-{index:05d}-of-{count:05d}.tfrecord"


def _feature(value) -> tf.train.Feature | None:
    """A column value as a feature: text → bytes, int/bool → int64, float → float; lists of
    one kind likewise; None → no feature (a missing value, as in a sparse CSV)."""
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(isinstance(v, (bool, int)) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    text = [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values]
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode() for t in text]))


def to_example(row: dict) -> bytes:
    """One row as a serialized `tf.train.Example`, a feature per column of the same name.

    Example:
        >>> example = tf.train.Example.FromString(to_example({"text": "hi", "label": 1}))
        >>> sorted(example.features.feature), example.features.feature["text"].bytes_list.value
        (['label', 'text'], [b'hi'])
    """
    features = {str(k): f for k, v in row.items() if (f := _feature(v)) is not None}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


@dataclass
class ShardSet:
    """What `write_shards` wrote: the shard paths and rows per shard."""

    files: list[str]
    rows: list[int]
    manifest: str

    def summary(self) -> str:
        return (f"wrote {sum(self.rows)} rows to {len(self.files)} shards "
                f"({min(self.rows)}–{max(self.rows)} rows each); manifest {self.manifest}")


def write_shards(rows: list[dict], out_dir: str, *, name: str, shards: int,
                 report: LoadReport | None = None) -> ShardSet:
    """Writes `rows` round-robin into `shards` TFRecord files in `out_dir`, each atomically.

    Args:
        rows: the valid rows (every column kept).
        out_dir: a local directory or any `tf.io.gfile` directory (created if missing).
        name: the shards' name prefix.
        shards: how many files (at least 1, at most the number of rows).
        report: the source's load report, kept in the manifest (rows skipped while reading).

    Raises:
        DataError: a shard count below 1 or above the number of rows.
    """
    if not 1 <= shards <= max(len(rows), 1):
        raise DataError(
            f"`--shards` must be between 1 and the number of rows ({len(rows)}). "
            f"Received: shards={shards}."
        )
    tf.io.gfile.makedirs(out_dir)
    files = [f"{out_dir.rstrip('/')}/{shard_name(name, i, shards)}" for i in range(shards)]
    counts = [len(range(i, len(rows), shards)) for i in range(shards)]
    progress = keras.utils.Progbar(len(rows), unit_name="row")
    for index, path in enumerate(files):
        temporary = f"{out_dir.rstrip('/')}/.{shard_name(name, index, shards)}.tmp"
        with tf.io.TFRecordWriter(temporary) as writer:
            for row in rows[index::shards]:
                writer.write(to_example(row))
        tf.io.gfile.rename(temporary, path, overwrite=True)
        progress.add(counts[index])
    manifest = f"{out_dir.rstrip('/')}/{name}.manifest.json"
    _write_manifest(manifest, files, counts, report)
    _remove_stale_shards(out_dir, name, keep=files)
    return ShardSet(files, counts, manifest)


def _write_manifest(path: str, files: list[str], counts: list[int],
                    report: LoadReport | None) -> None:
    body = {"shards": [{"file": f.rsplit("/", 1)[-1], "rows": n} for f, n in zip(files, counts)],
            "rows": sum(counts), "source": report.to_dict() if report else None}
    temporary = f"{path}.tmp"
    with tf.io.gfile.GFile(temporary, "w") as file:
        file.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _remove_stale_shards(out_dir: str, name: str, keep: list[str]) -> None:
    """Shards of an earlier run with another count would be read by `<name>-*` globs."""
    for path in tf.io.gfile.glob(f"{out_dir.rstrip('/')}/{name}-*-of-*.tfrecord"):
        if path not in keep:
            tf.io.gfile.remove(path)
            logger.info("removed %s (an earlier shard set)", path)

