"""Streamed data: the scan and the per-epoch tf.data read agree on every row, and every valid
row is read once per epoch in exactly one split."""

import collections

import pytest

from tfnlp.backend import tf
from tfnlp.config import DataConfig
from tfnlp.data import DataError, read_texts
from tfnlp.data.sharding import to_example
from tfnlp.data.streaming import scan, split_dataset, streams

LABELS = ["neg", "neu", "pos"]


def write_shards(directory, rows_per_shard=40, shards=4, extra=(), filler=""):
    """Shards of rows with unique texts `text i` (so a text is an id), `filler` appended."""
    directory.mkdir(exist_ok=True)
    for shard in range(shards):
        with tf.io.TFRecordWriter(str(directory / f"d-{shard:05d}-of-{shards:05d}.tfrecord")) as w:
            for i in range(shard * rows_per_shard, (shard + 1) * rows_per_shard):
                w.write(to_example({"text": f"text {i}{filler}", "label": LABELS[i % 3],
                                    "id": i}))
            if shard == 0:
                for raw in extra:
                    w.write(raw)
    return str(directory / "d-*.tfrecord")


def epoch_texts(data, split, **kwargs):
    options = {"batch_size": 7, "shuffle": False, "seed": 1, "shuffle_buffer": 10, **kwargs}
    texts, labels = [], []
    for batch_texts, ids in split_dataset(data, split, **options):
        texts += [t.decode() for t in batch_texts.numpy()]
        labels += ids.numpy().tolist()
    return texts, labels


def test_every_row_is_read_once_per_epoch_in_the_split_the_scan_counted(tmp_path):
    data = scan(DataConfig(source=write_shards(tmp_path / "s")), seed=1, sample_size=1000)
    assert data.labels == LABELS and sum(data.sizes.values()) == 160
    seen = []
    for split in ("train", "validation", "test"):
        texts, label_ids = epoch_texts(data, split)
        assert len(texts) == data.sizes[split] > 0
        assert collections.Counter(LABELS[i] for i in label_ids) == data.label_counts[split]
        assert all(LABELS[i] == LABELS[int(t.split()[1]) % 3] for t, i in zip(texts, label_ids))
        seen += texts
    assert sorted(seen) == sorted(f"text {i}" for i in range(160))
    shuffled, _ = epoch_texts(data, "train", shuffle=True)
    assert sorted(shuffled) == sorted(epoch_texts(data, "train")[0])
    assert sorted(data.train_sample.texts) == sorted(epoch_texts(data, "train")[0])


def test_the_vocabulary_sample_is_bounded_and_seeded(tmp_path):
    source = write_shards(tmp_path / "s")
    first = scan(DataConfig(source=source), seed=3, sample_size=20)
    again = scan(DataConfig(source=source), seed=3, sample_size=20)
    assert len(first.train_sample) == 20 and first.train_sample == again.train_sample
    assert first.sizes["train"] > 100


def test_bad_records_are_skipped_alike_in_the_scan_and_the_stream(tmp_path):
    invalid_utf8 = tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"caf\xc3 ok"])),
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"pos"]))}))
    extra = [to_example({"text": "  ", "label": "pos"}), to_example({"text": "no label"}),
             b"not an example", invalid_utf8.SerializeToString()]
    source = write_shards(tmp_path / "s", extra=extra)
    data = scan(DataConfig(source=source, on_bad_row="skip"), seed=1, sample_size=1000)
    assert [r["reason"] for r in data.report.skipped] == [
        "missing text in column 'text'", "missing label in column 'label'",
        "not a tf.train.Example"]
    streamed = sorted(t for split in ("train", "validation", "test")
                      for t in epoch_texts(data, split)[0])
    in_memory = []
    for path in sorted((tmp_path / "s").iterdir()):
        in_memory += read_texts(path, on_bad_row="skip")[0].texts
    assert streamed == sorted(in_memory) and "caf\ufffd ok" in streamed
    with pytest.raises(DataError, match=r"d-00000-of-00004\.tfrecord:41: missing text"):
        scan(DataConfig(source=source), seed=1, sample_size=10)


def test_held_out_files_are_whole_splits(tmp_path):
    source = write_shards(tmp_path / "s")
    config = DataConfig(source=source, validation_files=str(tmp_path / "s" / "d-00002*"),
                        test_files=str(tmp_path / "s" / "d-00003*"))
    data = scan(config, seed=1, sample_size=1000)
    assert data.sizes == {"train": 80, "validation": 40, "test": 40}
    assert sorted(epoch_texts(data, "test")[0]) == sorted(f"text {i}" for i in range(120, 160))
    with pytest.raises(DataError, match="matched by both"):
        scan(DataConfig(source=source, validation_files=source, test_files=source),
             seed=1, sample_size=10)


def test_csv_files_stream_through_the_python_readers(tmp_path):
    for part in range(2):
        (tmp_path / f"p-{part}.csv").write_text("text,label\n" + "".join(
            f'"row {part}-{i}, quoted",{LABELS[i % 3]}\n' for i in range(30)))
    data = scan(DataConfig(source=str(tmp_path / "p-*.csv")), seed=1, sample_size=1000)
    texts = [t for split in ("train", "validation", "test") for t in epoch_texts(data, split)[0]]
    assert sorted(texts) == sorted(f"row {p}-{i}, quoted" for p in range(2) for i in range(30))


def test_streaming_is_chosen_for_patterns_and_limits_are_refused(tmp_path):
    assert streams(DataConfig(source="a/b-*.tfrecord"))
    assert not streams(DataConfig(source="a/b.csv"))
    assert not streams(DataConfig(source="a/b-*.tfrecord", stream=False))
    with pytest.raises(DataError, match="`data.limit` takes a random subset"):
        scan(DataConfig(source=write_shards(tmp_path / "s"), limit=5), seed=1, sample_size=10)
