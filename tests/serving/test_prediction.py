"""`tfnlp predict --input`: one output row per input row, bad rows reported with their line,
outputs never half-written, and the same probabilities as the export's own signature."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import run_cli
from tfnlp.prediction import load_predictor, predict_file, read_rows

ROWS = 10_000
BAD_LINES = {3, 500, 9_999}  # 1-based file lines (line 1 is the header)


@pytest.fixture(scope="module")
def export(tiny_run):
    return tiny_run.export_path.parent


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("predict") / "texts.csv"
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "text"])
        for line in range(2, ROWS + 2):
            text = "" if line in BAD_LINES else f"tweet {line} :) what a\\nday"
            writer.writerow([f"r{line}", text])
    return path


def test_every_input_row_gives_one_output_row(export, big_csv, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", str(export), "--input", str(big_csv), "--output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"predicted {ROWS - 3:,d} texts" in result.stderr and "3 bad rows" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [f"r{line}" for line in range(2, ROWS + 2)]
    errors = {row["line"]: row["error"] for row in rows if "error" in row}
    assert errors == {line: "missing text in column 'text'" for line in BAD_LINES}
    good = [row for row in rows if "error" not in row]
    assert all(set(row["probabilities"]) == {"negative", "neutral", "positive"} for row in good)
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_probabilities_equal_the_export_signature(export, tmp_path):
    texts = ["I love this car :)", "我爱北京天安门", "😀😀", "worst traffic ever"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    predictor = load_predictor(export)
    out = tmp_path / "out.csv"
    report = predict_file(predictor, str(source), str(out), output_format="csv",
                          progress=False)
    assert (report.rows, report.bad_rows) == (4, 0)
    with open(out, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["text"] for row in rows] == texts
    served = np.array([[float(row[f"p_{n}"]) for n in predictor.labels] for row in rows])
    np.testing.assert_allclose(served, predictor.probabilities(texts), atol=1e-6)


def test_a_bad_row_can_stop_the_run_and_then_no_output_is_left(export, big_csv, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", str(export), "--input", str(big_csv), "--output", str(out),
                     "--on-bad-row", "error")
    assert result.returncode == 1
    assert f"{big_csv}:3: missing text in column 'text'" in result.stderr
    assert not out.exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_jsonl_rows_that_are_not_json_become_error_rows(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{not json\n\n{"id": 3}\n["x"]\n', encoding="utf-8")
    rows = list(read_rows(str(source)))
    assert [(row.line, row.text) for row in rows] == [(1, "ok"), (2, None), (4, None),
                                                      (5, None)]
    assert rows[1].error.startswith("not JSON") and rows[2].error == "missing text in key 'text'"
    assert rows[3].error == "not a JSON object"


def test_stdin_lines_stream_to_stdout(export):
    process = subprocess.run(
        [sys.executable, "-m", "tfnlp", "predict", str(export), "--input", "-"],
        input="good day\nbad day\n", capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    rows = [json.loads(line) for line in process.stdout.splitlines()]
    assert [(row["line"], row["text"]) for row in rows] == [(1, "good day"), (2, "bad day")]


def test_texts_and_input_together_are_refused(export, capsys):
    from tfnlp.cli import main

    assert main(["predict", str(export), "hello", "--input", "x.csv"]) == 1
    assert "not both and not neither" in capsys.readouterr().err
