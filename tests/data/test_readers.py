import json

import pytest

from tfnlp.backend import tf
from tfnlp.data import DataError, decode_leniently, read_texts


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_csv_reads_columns_and_counts_invalid_utf8(tmp_path):
    path = write(tmp_path / "d.csv", b"text,label\nhello \xff world,pos\n\"a, quoted\",neg\n")
    examples, report = read_texts(path)
    assert examples.texts == ["hello \ufffd world", "a, quoted"]
    assert examples.labels == ["pos", "neg"]
    assert report.replaced_characters == 1
    assert (report.rows_read, report.rows_kept, report.rows_skipped) == (2, 2, 0)


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = write(tmp_path / "excel.csv", b"\xef\xbb\xbftext,label\nhello,pos\n")
    examples, report = read_texts(path)
    assert examples.texts == ["hello"] and report.replaced_characters == 0


def test_existing_replacement_characters_are_not_counted(tmp_path):
    text, replaced = decode_leniently("ok \ufffd".encode() + b" \xc3")
    assert replaced == 1
    assert text == "ok \ufffd \ufffd"


BAD_CSV = (
    b"text,label\n"
    b"good one,pos\n"  # line 2
    b",neg\n"  # line 3: missing text
    b"no label,\n"  # line 4: missing label
    b"too,many,fields\n"  # line 5
    b"\n"  # blank lines are not rows
    b"fine again,neg\n"  # line 7
)


def test_bad_rows_stop_the_run_with_file_and_line(tmp_path):
    path = write(tmp_path / "bad.csv", BAD_CSV)
    with pytest.raises(DataError, match=r"bad\.csv:3: missing text in column 'text'") as error:
        read_texts(path, on_bad_row="error")
    assert "on_bad_row: skip" in str(error.value)


def test_bad_rows_are_skipped_counted_and_listed(tmp_path):
    path = write(tmp_path / "bad.csv", BAD_CSV)
    examples, report = read_texts(path, on_bad_row="skip")
    assert examples.texts == ["good one", "fine again"]
    assert report.rows_read == 5
    assert report.rows_kept == 2
    assert [(s["line"], s["reason"]) for s in report.skipped] == [
        (3, "missing text in column 'text'"),
        (4, "missing label in column 'label'"),
        (5, "expected 2 fields, found 3"),
    ]
    assert report.to_dict()["rows_skipped"] == 3


def test_unterminated_quote_is_a_bad_row(tmp_path):
    path = write(tmp_path / "q.csv", b'text,label\nok,pos\n"never closed,neg\n')
    with pytest.raises(DataError, match=r"q\.csv:3: unparseable CSV"):
        read_texts(path)


def test_missing_column_names_what_was_found(tmp_path):
    path = write(tmp_path / "cols.csv", b"body,label\nhi,pos\n")
    with pytest.raises(DataError, match=r"no column 'text' \(found: body, label\)"):
        read_texts(path)


def test_wrong_delimiter_is_a_missing_column(tmp_path):
    path = write(tmp_path / "semi.csv", b"text;label\nhi;pos\n")
    with pytest.raises(DataError, match="no column 'text'"):
        read_texts(path)


def test_jsonl_with_bad_lines(tmp_path):
    lines = [json.dumps({"text": "a", "label": 1}), "{not json", json.dumps([1, 2]),
             json.dumps({"text": "b", "label": "x", "w": 0.5})]
    path = write(tmp_path / "d.jsonl", "\n".join(lines).encode())
    examples, report = read_texts(path, on_bad_row="skip")
    assert examples.texts == ["a", "b"]
    assert examples.labels == ["1", "x"]
    assert [s["line"] for s in report.skipped] == [2, 3]
    with pytest.raises(DataError, match=r"d\.jsonl:2: unparseable JSON"):
        read_texts(path)


def test_weight_column(tmp_path):
    path = write(tmp_path / "w.csv", b"text,label,conf\na,pos,0.5\nb,neg,oops\n")
    examples, report = read_texts(path, weight_column="conf", on_bad_row="skip")
    assert examples.weights == [0.5]
    assert report.skipped == [{"line": 3, "reason": "weight in column 'conf' is not a number"}]


def _example(text, label):
    feature = {}
    if text is not None:
        feature["text"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text]))
    if label is not None:
        feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_tfrecord_reads_examples_and_reports_record_numbers(tmp_path):
    path = tmp_path / "d.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(_example(b"first", 0))
        writer.write(_example(b"bad \xff", 1))
        writer.write(_example(None, 1))
    examples, report = read_texts(path, on_bad_row="skip")
    assert examples.texts == ["first", "bad \ufffd"]
    assert examples.labels == ["0", "1"]
    assert report.replaced_characters == 1
    assert report.skipped == [{"line": 3, "reason": "missing text in column 'text'"}]


def test_truncated_tfrecord_is_reported_not_crashed(tmp_path):
    path = tmp_path / "t.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(_example(b"first", 0))
        writer.write(_example(b"second", 1))
    path.write_bytes(path.read_bytes()[:-7])
    examples, report = read_texts(path, on_bad_row="skip")
    assert examples.texts == ["first"]
    assert report.skipped[0]["line"] == 2
    assert "truncated or corrupt" in report.skipped[0]["reason"]


def test_unknown_extension_and_missing_file(tmp_path):
    path = write(tmp_path / "d.txt", b"x")
    with pytest.raises(DataError, match="set `data.format`"):
        read_texts(path)
    with pytest.raises(DataError, match="no such data file"):
        read_texts(tmp_path / "missing.csv")


LONG_TEXT = "word " * 200_000  # 1 MB: past the csv module's default 128 KiB field limit


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".tfrecord"])
def test_a_one_megabyte_text_is_a_valid_row(tmp_path, suffix):
    path = tmp_path / f"long{suffix}"
    if suffix == ".csv":
        path.write_text(f'text,label\n"{LONG_TEXT}",1\nshort,0\n')
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps({"text": t, "label": label})
                                  for t, label in [(LONG_TEXT, "1"), ("short", "0")]))
    else:
        with tf.io.TFRecordWriter(str(path)) as writer:
            writer.write(_example(LONG_TEXT.encode(), 1))
            writer.write(_example(b"short", 0))
    examples, report = read_texts(path, on_bad_row="error")
    assert [len(text) for text in examples.texts] == [len(LONG_TEXT), 5]
    assert examples.labels == ["1", "0"] and report.skipped == []
