"""`tfnlp bench predict`: file-scale prediction texts/s beside the bare in-process model.

Both on the same texts in one process: `in_process` calls the predictor on batches already in
memory (what serve-check's fresh process measures against), `predict_file` streams a CSV of
the same texts through `tfnlp predict --input` into a JSONL file, so the gap is the cost of
reading, writing and bookkeeping.
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

from tfnlp.atomic import write_json
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.bench.preprocess import bench_texts
from tfnlp.prediction import load_predictor, predict_file

# Batch sizes timed on the first `SWEEP_TEXTS` texts: where throughput stops rising is a
# sensible `max_batch_size` for TF-Serving's batching on this machine.
SWEEP_BATCH_SIZES = (1, 8, 32, 64, 128, 256)
SWEEP_TEXTS = 2048


def _in_process_seconds(predictor, texts: list[str], batch_size: int) -> float:
    predictor.probabilities(texts[:batch_size])  # traces the graph before any timing
    start = time.perf_counter()
    for first in range(0, len(texts), batch_size):
        predictor.probabilities(texts[first:first + batch_size])
    return time.perf_counter() - start


def bench_predict(model: str | Path, out_dir: str | Path, *, limit: int | None = None,
                  batch_size: int = 256) -> dict:
    """Times both ways over the built-in tweets (or a seeded subset); JSON + PNG.

    Returns:
        The report written to `bench_predict.json`.
    """
    predictor = load_predictor(model)
    texts = bench_texts(1, limit)
    sweep = {size: _in_process_seconds(predictor, texts[:SWEEP_TEXTS], size)
             for size in SWEEP_BATCH_SIZES}
    in_process = _in_process_seconds(predictor, texts, batch_size)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "texts.csv"
        with open(source, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["id", "text"])
            writer.writerows(enumerate(texts))
        report = predict_file(predictor, str(source), str(Path(scratch) / "out.jsonl"),
                              batch_size=batch_size, progress=False)
    runs = {"in_process": {"seconds": in_process, "texts_per_second": len(texts) / in_process},
            "predict_file": {"seconds": report.seconds,
                             "texts_per_second": report.texts_per_second,
                             "rows": report.rows, "bad_rows": report.bad_rows}}
    count = min(SWEEP_TEXTS, len(texts))
    result = {"model": str(model), "texts": len(texts), "batch_size": batch_size, "runs": runs,
              "in_process_texts_per_second_by_batch_size": {
                  str(size): count / seconds for size, seconds in sweep.items()},
              "ratio": runs["predict_file"]["texts_per_second"]
              / runs["in_process"]["texts_per_second"],
              "machine": machine_summary()}
    out = Path(out_dir)
    write_json(out / "bench_predict.json", result)
    bar_chart(out / "bench_predict.png", f"prediction texts/s, {len(texts):,d} tweets",
              [("texts/s", {k: r["texts_per_second"] for k, r in runs.items()})],
              highlight="in_process")
    return result


def summary_lines(report: dict) -> list[str]:
    sweep = report["in_process_texts_per_second_by_batch_size"]
    return [f"{name:<14}{run['texts_per_second']:>10,.0f} texts/s  ({run['seconds']:.2f} s)"
            for name, run in report["runs"].items()] + [
        f"predict_file / in_process: {report['ratio']:.2f}",
        "in process by batch size: " + ", ".join(f"{size}: {rate:,.0f}/s"
                                                 for size, rate in sweep.items())]
