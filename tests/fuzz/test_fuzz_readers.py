"""Property tests of `read_texts(..., on_bad_row="skip")` on CSV, JSONL and TFRecord files.

Two properties per format. On arbitrary bytes: the read ends (or stops with a `DataError`
naming the file, for a missing column only), and every row is accounted for
(rows_read == kept + skipped). On well-formed files: no valid row is dropped, every invalid
one is skipped, in file order, and nothing is reported as replaced UTF-8.
"""

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import DEPTH, DIGITS, FUZZ, RAW_BYTES, TEXT
from tfnlp.backend import tf
from tfnlp.data import DataError, read_texts

LABEL = st.one_of(st.sampled_from(["pos", "neg", " neu ", "", " \t"]), TEXT)
ROWS = st.lists(st.tuples(TEXT, LABEL), max_size=20)
# A header problem is the one thing that may stop a skip-mode read (there is no row to skip).
HEADER_PROBLEMS = ("has no column", "the file is empty", "cannot parse the header row")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # One folder for the module: each example overwrites its file (hypothesis runs them
    # one at a time, and a function-scoped tmp_path would not be reset between examples).
    return tmp_path_factory.mktemp("fuzz_readers")


def is_valid(text, label) -> bool:
    """What the readers promise to keep: a non-blank text and a non-blank label."""
    return bool(text.strip()) and bool(str(label).strip())


def read_skipping(path, *, header_errors=HEADER_PROBLEMS):
    """`read_texts` in skip mode; None for an allowed header `DataError`, which must name
    the file. Checks that every row read is either kept or skipped."""
    try:
        examples, report = read_texts(path, on_bad_row="skip")
    except DataError as error:
        message = str(error)
        assert message.startswith(str(path)) and any(p in message for p in header_errors), \
            message
        return None
    assert report.rows_read == report.rows_kept + report.rows_skipped
    assert report.rows_kept == len(examples) == len(examples.labels)
    assert all(isinstance(t, str) and t.strip() for t in examples.texts)
    assert all(isinstance(lab, str) and lab for lab in examples.labels)
    assert all(entry["line"] >= 1 and entry["reason"] for entry in report.skipped)
    return examples, report


def check_well_formed(path, rows):
    """The file holds exactly `rows` (text, label): the valid ones are kept, in order, the
    others skipped, and no replacement of invalid UTF-8 is reported."""
    examples, report = read_texts(path, on_bad_row="skip")
    valid = [(t, str(lab).strip()) for t, lab in rows if is_valid(t, lab)]
    assert list(zip(examples.texts, examples.labels)) == valid
    assert report.rows_read == len(rows)
    assert report.rows_skipped == len(rows) - len(valid)
    assert report.replaced_characters == 0


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_replacements(report, data: bytes):
    # Replacements are reported exactly when the file is not valid UTF-8.
    assert (report.replaced_characters > 0) == (not is_utf8(data)), report.replaced_characters


# CSV -----------------------------------------------------------------------------------------

# (line terminator, quoting) of well-formed files. Not "\n" with minimal quoting: Python
# 3.11's writer then leaves a "\r" inside a field unquoted, which no reader can round-trip.
DIALECTS = st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\r\n", csv.QUOTE_ALL),
                            ("\n", csv.QUOTE_ALL)])


@FUZZ
@given(ROWS, st.sampled_from(["csv", "tsv"]), DIALECTS, st.booleans())
def test_csv_keeps_every_valid_row(folder, rows, suffix, dialect, label_first):
    path = folder / f"well_formed.{suffix}"
    out = io.StringIO()
    newline, quoting = dialect
    writer = csv.writer(out, delimiter="\t" if suffix == "tsv" else ",", lineterminator=newline,
                        quoting=quoting)
    header = ["label", "text"] if label_first else ["text", "label"]
    writer.writerow(header)
    writer.writerows([(lab, t) if label_first else (t, lab) for t, lab in rows])
    path.write_bytes(out.getvalue().encode("utf-8"))
    check_well_formed(path, rows)


@FUZZ
@given(st.one_of(RAW_BYTES.map(lambda tail: b"text,label\n" + tail), RAW_BYTES))
def test_csv_on_arbitrary_bytes_accounts_for_every_row(folder, data):
    path = folder / "arbitrary.csv"
    path.write_bytes(data)
    result = read_skipping(path)
    if result is not None:
        check_replacements(result[1], data)


# JSONL ---------------------------------------------------------------------------------------

JSON_LABEL = st.one_of(LABEL, st.integers(0, 3))


@FUZZ
@given(st.lists(st.tuples(TEXT, JSON_LABEL, st.integers(0, 2)), max_size=20),
       st.booleans(), st.sampled_from(["\n", "\r\n"]))
def test_jsonl_keeps_every_valid_row(folder, drawn, ascii_only, newline):
    # ensure_ascii=False is how most non-Python writers emit JSON: characters such as U+2028
    # stay raw inside strings (legal JSON) and must not end the line. Blank lines are not rows.
    path = folder / "well_formed.jsonl"
    lines = []
    for text, label, blanks in drawn:
        lines += [""] * blanks + [json.dumps({"text": text, "label": label},
                                             ensure_ascii=ascii_only)]
    path.write_bytes(newline.join(lines).encode("utf-8"))
    check_well_formed(path, [(text, label) for text, label, _ in drawn])


VALID_LINE = st.tuples(TEXT.filter(str.strip), st.sampled_from(["pos", "neg"])).map(
    lambda row: json.dumps({"text": row[0], "label": row[1]}))
GARBAGE_LINE = st.one_of(
    TEXT,
    RAW_BYTES.map(lambda raw: raw.decode("utf-8", "surrogateescape")),
    DEPTH.map(lambda depth: "[" * depth + "]" * depth),
    DEPTH.map(lambda depth: '{"text": ' * depth + '"x"' + "}" * depth),
    DIGITS.map(lambda digits: '{"text": "x", "label": ' + "9" * digits + "}"),
    st.sampled_from(['{"text": "x"}', '{"label": "y"}', "[]", "null", '"text"', "NaN",
                     '{"text": 1, "label": "y"}', '{"text": "x", "label": null}']),
)


@FUZZ
@given(st.lists(st.one_of(VALID_LINE.map(lambda line: (True, line)),
                          GARBAGE_LINE.map(lambda line: (False, line))), max_size=12))
def test_jsonl_on_garbage_lines_keeps_the_valid_ones(folder, lines):
    path = folder / "mixed.jsonl"
    data = "\n".join(line for _, line in lines).encode("utf-8", "surrogateescape")
    path.write_bytes(data)
    result = read_skipping(path, header_errors=("has no column",))
    if result is None:
        return
    # The valid lines' texts appear among the kept ones, in order (a garbage line may be
    # valid by chance, so "among" rather than "equal").
    kept = iter(result[0].texts)
    wanted = [json.loads(line)["text"] for valid, line in lines if valid]
    assert all(any(text == k for k in kept) for text in wanted), (wanted, result[0].texts)
    check_replacements(result[1], data)


@FUZZ
@given(RAW_BYTES)
def test_jsonl_on_arbitrary_bytes_accounts_for_every_row(folder, data):
    path = folder / "arbitrary.jsonl"
    path.write_bytes(data)
    read_skipping(path, header_errors=("has no column",))


# TFRecord ------------------------------------------------------------------------------------

def feature(value) -> tf.train.Feature:
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    if isinstance(value, float):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))


def example(text, label, extra=None) -> bytes:
    features = {"text": feature(text), "label": feature(label)}
    if extra is not None:
        features["score"] = feature(extra)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_records(path, records) -> list[int]:
    """Writes `records` with TensorFlow's own writer; returns where each record ends."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    ends, position = [], 0
    for record in records:  # framing: 8-byte length, 4-byte CRC, data, 4-byte CRC
        position += 16 + len(record)
        ends.append(position)
    return ends


@FUZZ
@given(st.lists(st.tuples(TEXT, JSON_LABEL, st.none() | st.floats(width=32)), max_size=20))
def test_tfrecord_keeps_every_valid_row(folder, rows):
    path = folder / "well_formed.tfrecord"
    write_records(path, [example(*row) for row in rows])
    check_well_formed(path, [(text, label) for text, label, _ in rows])


@FUZZ
@given(st.lists(st.one_of(RAW_BYTES, VALID_LINE.map(lambda line: example(**json.loads(line)))),
                max_size=12))
def test_tfrecord_with_arbitrary_payloads_accounts_for_every_record(folder, records):
    path = folder / "payloads.tfrecord"
    write_records(path, records)
    examples, report = read_skipping(path, header_errors=())
    # Framing is intact, so every record is read: as a row, or as a skipped one.
    assert report.rows_read == len(records)


@FUZZ
@given(RAW_BYTES)
def test_tfrecord_on_arbitrary_bytes_accounts_for_every_row(folder, data):
    path = folder / "arbitrary.tfrecord"
    path.write_bytes(data)
    read_skipping(path, header_errors=())


# One to eight valid (text, label) rows, to write as whole TFRecord files and then damage.
VALID_ROWS = st.lists(st.tuples(TEXT.filter(str.strip), st.sampled_from(["pos", "neg"])),
                      min_size=1, max_size=8)


@FUZZ
@given(VALID_ROWS, st.data())
def test_a_truncated_tfrecord_keeps_the_whole_records_and_reports_the_cut(folder, rows, data):
    path = folder / "truncated.tfrecord"
    ends = write_records(path, [example(*row) for row in rows])
    cut = data.draw(st.integers(0, ends[-1] - 1), label="cut")
    path.write_bytes(path.read_bytes()[:cut])
    examples, report = read_texts(path, on_bad_row="skip")
    whole = sum(end <= cut for end in ends)
    assert examples.texts == [text for text, _ in rows[:whole]]
    # A cut inside a record must leave a trace (the readers' "nothing dropped silently").
    assert report.rows_skipped == (0 if cut in (0, *ends) else 1), (cut, ends, report.skipped)


@FUZZ
@given(VALID_ROWS, st.data())
def test_a_corrupted_tfrecord_keeps_the_records_before_the_damage(folder, rows, data):
    path = folder / "corrupted.tfrecord"
    ends = write_records(path, [example(*row) for row in rows])
    position = data.draw(st.integers(0, ends[-1] - 1), label="position")
    damaged = bytearray(path.read_bytes())
    damaged[position] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(damaged))
    examples, report = read_texts(path, on_bad_row="skip")
    # Every byte of a record is covered by a CRC, so the damaged record is caught.
    before = sum(end <= position for end in ends)
    assert examples.texts == [text for text, _ in rows[:before]]
    assert [entry["line"] for entry in report.skipped] == [before + 1]


# The smallest inputs the targets above found, pinned so each fix is checked.

def test_jsonl_rows_with_raw_line_separators_in_strings_are_kept(folder):
    # Legal JSON (only U+0000-U+001F must be escaped) that str.splitlines() cuts in two.
    path = folder / "separators.jsonl"
    rows = [("a\u2028b", "pos"), ("c\x85d", "neg"), ("e\u2029f", "pos")]
    path.write_bytes("\n".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False)
                               for t, lab in rows).encode("utf-8"))
    check_well_formed(path, rows)


@pytest.mark.parametrize("line", [
    pytest.param("[" * 5000 + "]" * 5000, id="deep"),  # RecursionError
    pytest.param('{"text": "x", "label": ' + "9" * 4301 + "}", id="4301-digits"),  # ValueError
])
def test_jsonl_lines_beyond_the_parsers_limits_are_skipped(folder, line):
    path = folder / "limits.jsonl"
    path.write_text('{"text": "ok", "label": "pos"}\n' + line + "\n", encoding="utf-8")
    examples, report = read_skipping(path)
    assert examples.texts == ["ok"] and report.rows_read == 2


@pytest.mark.parametrize("cut", [1, 11])
def test_a_tfrecord_cut_inside_a_record_header_is_reported(folder, cut):
    # TensorFlow reads a partial 12-byte record header as the end of the file.
    path = folder / "header_cut.tfrecord"
    write_records(path, [example("hello", "pos")])
    path.write_bytes(path.read_bytes()[:cut])
    examples, report = read_texts(path, on_bad_row="skip")
    assert len(examples) == 0 and report.rows_skipped == 1, report.to_dict()
