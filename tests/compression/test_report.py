import json

import pytest

from tfnlp.compression import report


def _entry(accuracy, gzip_bytes, latency):
    return {
        "format": "tflite",
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.1,
        "bytes": 2 * gzip_bytes,
        "gzip_bytes": gzip_bytes,
        "latency_ms_batch1": latency,
        "throughput_batch64": 1000.0,
    }


ARTIFACTS = {
    "float32": _entry(0.80, 1000, 1.0),
    "int8_full": _entry(0.80, 200, 5.0),  # smallest but slower: never recommended
    "pruned_int8": _entry(0.795, 300, 0.9),  # within 1 point and faster: recommended
    "int8_dynamic": _entry(0.75, 250, 0.5),  # too inaccurate
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
        {
            "pipeline": "p",
            "model": "bilstm",
            "artifacts": artifacts,
            "recommended": "float32",
            "recommended_reason": "r",
            "notes": ["why"],
        },
        tmp_path,
    )
    assert json.loads(paths["json"].read_text())["artifacts"]["float32"]["gzip_bytes"] == 1000
    assert "Recommended: **float32**" in paths["markdown"].read_text()
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"


def _measured(name, latency, ops, unrolled=True, bytes_=1000):
    return {
        **_entry(0.8, bytes_ // 2, latency),
        "bytes": bytes_,
        "latency_ms_batch1_xnnpack": latency,
        "latency_ms_batch1_builtin": None,
        "conversion": {"mode": name, "unrolled": unrolled},
        "ops": {"subgraphs": 3 if "WHILE" in ops else 1, "ops": ops},
    }


def test_int8_latency_explanation_follows_the_measured_graph():
    lstm = {"FULLY_CONNECTED": 8, "TANH": 4}
    entries = {"float32": _measured("float32", 1.0, lstm), "int8_full": _measured("i", 2.0, lstm)}
    unrolled = report.explain_int8_latency(entries, {})
    assert unrolled.startswith("Batch-1 latency (float32 1.000 ms with XNNPACK / builtin kernels")
    assert "unrolled at the fixed length" in unrolled and "slower than float here" in unrolled
    entries["int8_full"]["ops"] = {"subgraphs": 3, "ops": {"WHILE": 2}}
    loops = report.explain_int8_latency(entries, {})
    assert "converts to 2 TFLite WHILE loop(s) (3 subgraphs;" in loops
    dense = {"FULLY_CONNECTED": 2, "BATCH_MATMUL": 1}
    entries = {"float32": _measured("float32", 1.0, dense), "int8_full": _measured("i", 0.5, dense)}
    faster = report.explain_int8_latency(entries, {"cpu_vector_flags": ["avx2"]})
    assert "int8_full, runs at 2.00x float32's speed" in faster and "speed win" in faster
    assert "(CPU vector extensions: avx2;" in faster
    assert report.explain_int8_latency({"float32": entries["float32"]}, {}) == ""


def test_notes_come_in_the_report_order():
    dense = {"FULLY_CONNECTED": 2}
    entries = {
        "float32": _measured("float32", 1.0, dense),
        "int8_full": _measured("i", 0.5, dense),
        "qat_int8": _measured("q", 1.0, dense, bytes_=950),  # > 0.9 x float32's bytes
    }
    passes = {"qat": {"quantized": ["logits"]}}
    notes = report.report_notes(entries, passes, {})
    assert len(notes) == 4
    assert notes[0].startswith("Batch-1 latency (")
    assert notes[1].startswith("qat_int8 is about float32's size") and "(logits)" in notes[1]
    assert notes[2:] == [report.TFLITE_INPUT_NOTE, report.LATENCY_NOTE]
    entries["qat_int8"]["bytes"] = 300
    assert len(report.report_notes(entries, passes, {})) == 3


def test_a_failed_experimental_conversion_is_one_line_of_note():
    error = RuntimeError("\n  Quantization not yet supported for op: 'WHILE'.\nmore detail")
    note = report.conversion_failure_note("int16x8", "16-bit activations", error)
    expected = "int16x8 (16-bit activations) did not convert: Quantization not yet supported"
    assert note == expected + " for op: 'WHILE'."
    assert report.first_line(ValueError()) == "ValueError()"
