"""Streamed data: a pattern of files that tf.data reads every epoch, never all in memory.

A corpus of many GB cannot be read into a Python list. When `data.source` is a pattern of
files (and `data.stream` is not false), a run first **scans** the files one at a time with the
same readers and row rules as in-memory data, so exactly the same rows are valid and every
skipped row is counted and reported with its file and line. The scan assigns each row to a
split, counts the splits and labels, and keeps seeded, bounded samples: training texts for the
vocabulary and the TF-IDF baseline, validation texts for the export's warm-up. Then every epoch
tf.data interleaves the files again (`split_dataset`); only the samples, a shuffle buffer and
a few open files are ever in memory.

Splits never depend on reading order:
- by file: `data.validation_files` / `data.test_files` name patterns of held-out files;
- otherwise by a stable hash of the text (FarmHash Fingerprint64, the same in the scan and in
  the graph): a text and its duplicates always land in the same split. Not stratified.

TFRecord files are read natively (`TFRecordDataset`, parsed in parallel), so tf.data's `FILE`
auto-sharding gives each worker its own files; CSV and JSONL files are parsed by the Python
readers inside tf.data (one file at a time per reader thread) and sharded by element.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tfnlp.backend import tf
from tfnlp.config.schema import DataConfig
from tfnlp.data.builtin import BUILTIN_DATASETS
from tfnlp.data.loading import reader_options
from tfnlp.data.readers import infer_format, read_texts
from tfnlp.data.records import DataError, LabelledTexts, LoadReport
from tfnlp.data.sharding import (
    is_pattern,
    matching_files,
    merge_reports,
    require_same_columns,
)

logger = logging.getLogger("tfnlp")

SPLITS = ("train", "validation", "test")
_HASH_BUCKETS = 10_000
# Python's str.strip() whitespace, as RE2 spells it: a row of only these has no text.
_BLANK = r"[\s\v\x1c-\x1f\x85\p{Z}]*"


def streams(config: DataConfig) -> bool:
    """Whether `data:` streams: `data.stream`, or by default when the source is a pattern."""
    if config.stream is not None:
        return config.stream
    return config.source not in BUILTIN_DATASETS and is_pattern(config.source)


def hash_splits(texts: list[str], validation_fraction: float,
                test_fraction: float) -> np.ndarray:
    """Each text's split index (0 train, 1 validation, 2 test) from a stable hash of it.

    Example:
        >>> hash_splits(["a", "b", "a", "c", "d"], 0.2, 0.2).tolist()  # duplicates share one
        [1, 0, 1, 2, 2]
    """
    buckets = tf.strings.to_hash_bucket_fast(tf.constant(texts, tf.string), _HASH_BUCKETS)
    return _split_of_bucket(buckets, validation_fraction, test_fraction).numpy()


def _split_of_bucket(buckets, validation_fraction: float, test_fraction: float):
    test_end = round(test_fraction * _HASH_BUCKETS)
    validation_end = test_end + round(validation_fraction * _HASH_BUCKETS)
    return tf.where(buckets < test_end, 2, tf.where(buckets < validation_end, 1, 0))


class _Reservoir:
    """A seeded uniform sample of at most `size` items from a stream (Vitter's algorithm R)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seen, self.items = size, 0, []
        self.random = random.Random(seed)

    def add(self, items: list) -> None:
        for item in items:
            self.seen += 1
            if len(self.items) < self.size:
                self.items.append(item)
            else:
                slot = self.random.randrange(self.seen)
                if slot < self.size:
                    self.items[slot] = item


@dataclass
class StreamedData:
    """What the scan learned: the files of each split, the counts, the labels and samples.

    Attributes:
        files: the files each split reads (by-file splits), or every file (hash splits).
        by_file: True when the splits are whole files.
        sizes: valid rows per split.
        label_counts: rows per label, per split.
        labels: the label names in id order.
        train_sample: a seeded sample of training texts and labels (vocabulary, baseline).
        test_sample: a seeded sample of test texts and labels (the baseline's test).
        validation_texts: the first validation texts (the export's warm-up texts).
        label_dtype: tf.string, or tf.int64 for TFRecord integer labels.
    """

    config: DataConfig
    files: dict[str, list[str]]
    by_file: bool
    report: LoadReport
    sizes: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, Counter] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    train_sample: LabelledTexts | None = None
    test_sample: LabelledTexts | None = None
    validation_texts: list[str] = field(default_factory=list)
    label_dtype: tf.DType = tf.string

    @property
    def format(self) -> str:
        first = next(files for files in self.files.values() if files)[0]
        return infer_format(first) if self.config.format == "auto" else self.config.format

    def summary(self) -> str:
        sample = len(self.train_sample) if self.train_sample else 0
        return (f"streaming {len(set().union(*self.files.values()))} file(s), splits by "
                f"{'file' if self.by_file else 'text hash'}; vocabulary sample {sample} of "
                f"{self.sizes['train']} training texts")


def _split_files(config: DataConfig) -> tuple[dict[str, list[str]], bool]:
    source = matching_files(config.source)
    if not (config.validation_files or config.test_files):
        return {split: source for split in SPLITS}, False
    held_out = {split: matching_files(pattern) if pattern else []
                for split, pattern in (("validation", config.validation_files),
                                       ("test", config.test_files))}
    both = set(held_out["validation"]) & set(held_out["test"])
    if both:
        raise DataError(f"{sorted(both)[0]}: matched by both `data.validation_files` and "
                        "`data.test_files`; a file belongs to one split. Narrow one pattern.")
    taken = set(held_out["validation"]) | set(held_out["test"])
    train = [path for path in source if path not in taken]
    if not train:
        raise DataError(f"{config.source}: every file it matches is held out for validation or "
                        "test; no training files are left. Narrow `data.validation_files` / "
                        "`data.test_files`.")
    return {"train": train, **held_out}, True


def scan(config: DataConfig, *, seed: int, sample_size: int) -> StreamedData:
    """Reads every file once (one at a time) and returns what training needs to stream them.

    Raises:
        DataError: as the readers (file and line), no file matched, mismatched columns,
            `data.limit` (stream fewer files instead), fewer than 2 labels, unknown labels.
    """
    if config.limit is not None:
        raise DataError("`data.limit` takes a random subset in memory, which streamed data "
                        "never holds. Remove it and point `data.source` at fewer files.")
    files, by_file = _split_files(config)
    data = StreamedData(config, files, by_file, LoadReport(config.source),
                        sizes=dict.fromkeys(SPLITS, 0),
                        label_counts={split: Counter() for split in SPLITS})
    train, test = _Reservoir(sample_size, seed), _Reservoir(sample_size, seed + 1)
    reports, kinds = [], set()
    for path in sorted({path for paths in files.values() for path in paths}):
        examples, report = read_texts(path, **reader_options(config))
        if reports:
            require_same_columns(report, reports[0], config.source)
        reports.append(report)
        kinds |= _label_kinds(path, config) if infer_format(path) == "tfrecord" else {"bytes"}
        for split, indices in _rows_by_split(data, path, examples):
            part = examples.take(indices)
            data.sizes[split] += len(part)
            data.label_counts[split].update(part.labels)
            pairs = list(zip(part.texts, part.labels))
            if split == "train":
                train.add(pairs)
            elif split == "test":
                test.add(pairs)
            elif len(data.validation_texts) < 64:
                data.validation_texts += part.texts[:64 - len(data.validation_texts)]
    data.report = merge_reports(config.source, reports)
    data.label_dtype = _label_dtype(kinds, config)
    data.train_sample, data.test_sample = _sample(train), _sample(test)
    data.labels = _labels(data)
    return data


def _rows_by_split(data: StreamedData, path: str, examples: LabelledTexts):
    if data.by_file:
        return [(split, range(len(examples))) for split in SPLITS if path in data.files[split]]
    splits = hash_splits(examples.texts, data.config.validation_fraction,
                         data.config.test_fraction) if len(examples) else np.array([])
    return [(split, np.flatnonzero(splits == index).tolist())
            for index, split in enumerate(SPLITS)]


def _sample(reservoir: _Reservoir) -> LabelledTexts:
    return LabelledTexts([text for text, _ in reservoir.items],
                         [label for _, label in reservoir.items])


def _label_kinds(path: str, config: DataConfig) -> set[str]:
    """The feature kinds the label column has in a TFRecord file's first records."""
    column = config.label_column or "label"
    kinds = set()
    for record in tf.data.TFRecordDataset(path).take(16).as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature.get(column)
        if feature is not None and feature.WhichOneof("kind"):
            kinds.add(feature.WhichOneof("kind").removesuffix("_list"))
    return kinds


def _label_dtype(kinds: set[str], config: DataConfig) -> tf.DType:
    if kinds <= {"bytes"}:
        return tf.string
    if kinds == {"int64"}:
        return tf.int64
    raise DataError(
        f"{config.source}: the label column {config.label_column or 'label'!r} holds "
        f"{sorted(kinds)} values; streamed labels must all be strings or all integers. "
        "Rewrite the files with `tfnlp shard`, which stores labels as read.")


def _labels(data: StreamedData) -> list[str]:
    found = sorted(set().union(*data.label_counts.values()))
    labels = list(data.config.labels) if data.config.labels else found
    unknown = sorted(set(found) - set(labels))
    if unknown:
        raise DataError(f"{data.config.source}: labels {unknown} are not in `data.labels` "
                        f"({labels}); add them to `data.labels` or fix the data.")
    if len(found) < 2:
        raise DataError(f"{data.config.source}: found {len(found)} label(s) {found}; "
                        "classification needs at least 2. Check `data.label_column`.")
    if not data.sizes["train"]:
        raise DataError(f"{data.config.source}: no training rows. Check the split settings.")
    return labels


# -- reading the files each epoch ------------------------------------------------------------

def _tfrecord_rows(data: StreamedData):
    """A function from one TFRecord path to its valid (text, label string[, weight]) rows."""
    config = data.config
    text_column, label_column = config.text_column or "text", config.label_column or "label"
    missing_label = "" if data.label_dtype == tf.string else -(2**63)
    spec = {text_column: tf.io.FixedLenFeature([], tf.string, default_value=""),
            label_column: tf.io.FixedLenFeature([], data.label_dtype, missing_label)}
    if config.weight_column:
        spec[config.weight_column] = tf.io.FixedLenFeature([], tf.float32, float("nan"))

    def parse(record):
        row = tf.io.parse_single_example(record, spec)
        # Invalid UTF-8 becomes U+FFFD, as the Python readers decode it.
        text = tf.strings.unicode_transcode(row[text_column], "UTF-8", "UTF-8",
                                            errors="replace", replacement_char=0xFFFD)
        label = row[label_column]
        valid = tf.logical_not(tf.strings.regex_full_match(text, _BLANK))
        if data.label_dtype == tf.string:
            label = tf.strings.strip(label)
            valid &= tf.strings.length(label) > 0
        else:
            valid &= label != missing_label
            label = tf.strings.as_string(label)
        weight = row[config.weight_column] if config.weight_column else tf.constant(1.0)
        return text, label, weight, valid & tf.math.is_finite(weight)

    def rows(path):
        dataset = tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        if (config.on_bad_row or "error") == "skip":
            # The scan counted and reported these records (corrupt, not an Example, a text
            # that is not bytes); here they are passed over the same way.
            dataset = dataset.ignore_errors()
        return dataset.filter(lambda *row: row[-1]).map(lambda *row: row[:-1])

    return rows


def _python_rows(data: StreamedData):
    """A function from one CSV/JSONL path to its valid rows, parsed by the Python readers."""
    options = {**reader_options(data.config), "on_bad_row": "skip"}  # the scan reported them
    signature = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string),
                 tf.TensorSpec([], tf.float32))

    def generate(path):
        examples, _ = read_texts(path.decode(), **options)
        weights = examples.weights or [1.0] * len(examples)
        yield from zip(examples.texts, examples.labels, weights)

    def rows(path):
        return tf.data.Dataset.from_generator(generate, args=(path,), output_signature=signature)

    return rows


def split_dataset(data: StreamedData, split: str, *, batch_size: int, shuffle: bool,
                  seed: int, shuffle_buffer: int, workers: int = 1) -> tf.data.Dataset:
    """Batches of (raw text, label id[, weight]) streamed from `split`'s files.

    Args:
        data: the scan.
        split: "train", "validation" or "test".
        batch_size: the global batch size.
        shuffle: shuffle the file order and the rows (seeded, reshuffled every epoch).
        seed: the shuffle seed.
        shuffle_buffer: rows held for shuffling (memory: this many texts).
        workers: the cluster's worker count: TFRecord files are sharded by file when there
            are at least this many, so every worker opens only its own.
    """
    files = data.files[split]
    native = data.format == "tfrecord"
    rows = _tfrecord_rows(data) if native else _python_rows(data)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        rows, cycle_length=min(len(files), 4), block_length=16,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=data.config.deterministic)
    if not data.by_file:
        index = SPLITS.index(split)
        fractions = data.config.validation_fraction, data.config.test_fraction
        dataset = dataset.filter(lambda text, *_: tf.equal(_split_of_bucket(
            tf.strings.to_hash_bucket_fast(text, _HASH_BUCKETS), *fractions), index))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(data.labels, tf.range(len(data.labels))), -1)

    def encode(text, label, weight):
        ids = table.lookup(label)
        return (text, ids, weight) if data.config.weight_column else (text, ids)

    dataset = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        dataset = dataset.shuffle(min(shuffle_buffer, data.sizes[split]) or 1, seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    policy = tf.data.experimental.AutoShardPolicy
    by_file = native and workers > 1 and len(files) >= workers
    if not by_file:
        # The scan counted the rows: progress bars and mid-epoch resumes know the epoch's
        # length. (Sharded by file, each worker reads a part of unknown size.)
        batches = -(-data.sizes[split] // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.FILE if by_file else policy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
