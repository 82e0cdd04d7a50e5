"""`tfnlp shard` and `data.source` patterns: every row in exactly one shard, read back whole."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tfnlp.backend import tf
from tfnlp.config import DataConfig
from tfnlp.data import DataError, load_examples
from tfnlp.data.loading import read_source
from tfnlp.data.readers import read_rows
from tfnlp.data.sharding import write_shards


def csv_file(path, rows):
    path.write_text("id,text,label,score\n" + "".join(f"{r}\n" for r in rows))
    return path


@pytest.fixture
def source(tmp_path):
    rows = [f"{i},text number {i},{'pos' if i % 3 else 'neg'},{i / 10}" for i in range(10)]
    return csv_file(tmp_path / "reviews.csv", rows[:4] + ["99,,pos,1.0"] + rows[4:])


def test_shards_hold_every_valid_row_once_with_every_column(tmp_path, source):
    rows, report = read_rows(source, on_bad_row="skip")
    shards = write_shards(rows, str(tmp_path / "out"), name="reviews", shards=3, report=report)
    assert [p.rsplit("/", 1)[-1] for p in shards.files] == [
        f"reviews-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert shards.rows == [4, 3, 3]
    examples, loaded = read_source(DataConfig(source=str(tmp_path / "out" / "reviews-*")))
    assert sorted(examples.texts) == sorted(f"text number {i}" for i in range(10))
    assert loaded.rows_kept == 10 and loaded.columns == ["id", "label", "score", "text"]
    assert [f["rows_kept"] for f in loaded.files] == [4, 3, 3]
    record = next(iter(tf.data.TFRecordDataset(shards.files[0])))
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    assert feature["id"].bytes_list.value == [b"0"]  # CSV values stay text, as read
    manifest = json.loads((tmp_path / "out" / "reviews.manifest.json").read_text())
    assert manifest["rows"] == 10 and manifest["source"]["rows_skipped"] == 1


def test_a_new_shard_count_replaces_the_old_set_and_leaves_no_temporary(tmp_path, source):
    rows, _ = read_rows(source, on_bad_row="skip")
    write_shards(rows, str(tmp_path / "s"), name="r", shards=4)
    write_shards(rows, str(tmp_path / "s"), name="r", shards=2)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "r-00000-of-00002.tfrecord", "r-00001-of-00002.tfrecord", "r.manifest.json"]
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".")]


def test_too_many_shards_is_refused(tmp_path, source):
    rows, _ = read_rows(source, on_bad_row="skip")
    with pytest.raises(DataError, match=r"between 1 and the number of rows \(10\)"):
        write_shards(rows, str(tmp_path), name="r", shards=11)


def test_a_pattern_reports_skipped_rows_with_their_file(tmp_path):
    csv_file(tmp_path / "a-1.csv", ["1,good,pos,1", "2,bad,neg,1"])
    csv_file(tmp_path / "a-2.csv", ["3,,neg,1", "4,fine,pos,1"])
    examples, labels, report = load_examples(
        DataConfig(source=str(tmp_path / "a-*.csv"), on_bad_row="skip"))
    assert examples.texts == ["good", "bad", "fine"] and labels == ["neg", "pos"]
    assert report.skipped == [{"file": str(tmp_path / "a-2.csv"), "line": 2,
                               "reason": "missing text in column 'text'"}]
    assert report.source == f"{tmp_path / 'a-*.csv'} (2 files)"


def test_a_pattern_matching_nothing_names_it(tmp_path):
    with pytest.raises(DataError, match=r"train-\*\.tfrecord: matches no file"):
        load_examples(DataConfig(source=str(tmp_path / "train-*.tfrecord")))


def test_files_with_different_columns_are_refused(tmp_path):
    csv_file(tmp_path / "a-1.csv", ["1,good,pos,1", "2,bad,neg,1"])
    (tmp_path / "a-2.csv").write_text("text,label\nfine,pos\n")
    with pytest.raises(DataError, match=r"a-2\.csv: its columns \['label', 'text'\] differ"):
        load_examples(DataConfig(source=str(tmp_path / "a-*.csv")))


def test_an_unreachable_bucket_is_a_clear_error_not_a_hang():
    # No network here: the GCS filesystem fails to resolve its host within seconds.
    with pytest.raises(DataError, match=r"gs://tfnlp-no-such-bucket/x-\*: cannot list"):
        load_examples(DataConfig(source="gs://tfnlp-no-such-bucket/x-*"))


def test_tfnlp_shard_command(tmp_path, source):
    done = subprocess.run(
        [sys.executable, "-m", "tfnlp", "shard", str(source), "--out", str(tmp_path / "s"),
         "--shards", "2", "--on-bad-row", "skip"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "wrote 10 rows to 2 shards (5–5 rows each)" in done.stdout
    assert "skipped 1" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "tfnlp", "shard", str(source), "--out", str(tmp_path / "t"),
         "--shards", "2"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 1 and "reviews.csv:6: missing text" in bad.stderr
    assert not (tmp_path / "t").exists()
