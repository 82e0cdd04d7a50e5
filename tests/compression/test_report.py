import gzip
import json

import pytest

from tfnlp.compression import report


def _entry(accuracy, gzip_bytes, latency):
    return {"format": "tflite", "accuracy": accuracy, "macro_f1": accuracy - 0.1,
            "bytes": 2 * gzip_bytes, "gzip_bytes": gzip_bytes, "latency_ms_batch1": latency,
            "throughput_batch64": 1000.0}


ARTIFACTS = {
    "float32": _entry(0.80, 1000, 1.0),
    "int8_full": _entry(0.80, 200, 5.0),      # smallest but slower: never recommended
    "pruned_int8": _entry(0.795, 300, 0.9),   # within 1 point and faster: recommended
    "int8_dynamic": _entry(0.75, 250, 0.5),   # too inaccurate
    "saved_model_float32": {**_entry(0.80, 10, 0.1), "format": "saved_model"},
}


def test_recommends_smallest_within_budget_and_not_slower():
    name, reason = report.recommend(ARTIFACTS, accuracy_budget=0.01)
    assert name == "pruned_int8"
    assert "300 gzip bytes" in reason
    # With no budget, only float32 itself qualifies.
    assert report.recommend(ARTIFACTS, accuracy_budget=0.0)[0] == "float32"


def test_ratios_table_and_plot(tmp_path):
    artifacts = json.loads(json.dumps(ARTIFACTS))
    report.add_ratios(artifacts)
    assert artifacts["int8_full"]["size_ratio_gzip"] == pytest.approx(5.0)
    assert artifacts["int8_full"]["speedup_batch1"] == pytest.approx(0.2)
    assert artifacts["pruned_int8"]["accuracy_drop_points"] == pytest.approx(0.5)
    table = report.markdown_table(artifacts)
    assert table.count("\n") == len(artifacts) + 2
    assert "| pruned_int8 | tflite | 0.7950 |" in table
    paths = report.write_report(
        {"pipeline": "p", "model": "bilstm", "artifacts": artifacts, "recommended": "float32",
         "recommended_reason": "r", "notes": ["why"]}, tmp_path)
    assert json.loads(paths["json"].read_text())["artifacts"]["float32"]["gzip_bytes"] == 1000
    assert "Recommended: **float32**" in paths["markdown"].read_text()
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"


def test_file_sizes_and_latency(tmp_path):
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(10_000))
    sizes = report.file_sizes(path)
    assert sizes == {"bytes": 10_000, "gzip_bytes": len(gzip.compress(bytes(10_000), 9))}
    assert sizes["gzip_bytes"] < 100
    calls = []
    assert report.median_latency_ms(lambda: calls.append(1), calls=20, warmup=3) >= 0.0
    assert len(calls) == 23
