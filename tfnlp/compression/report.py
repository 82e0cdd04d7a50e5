"""Measuring compressed artifacts and writing the report: JSON, a Markdown table, a PNG."""

from __future__ import annotations

import gzip
import json
import statistics
import time
from pathlib import Path

import numpy as np

from tfnlp import atomic
from tfnlp.evaluation.metrics import classification_metrics

# Columns of the Markdown table: key in an artifact's entry -> header.
_COLUMNS = {
    "accuracy": "accuracy", "macro_f1": "macro-F1", "bytes": "bytes", "gzip_bytes": "gzip bytes",
    "size_ratio_gzip": "× smaller (gzip)", "latency_ms_batch1": "batch-1 ms",
    "speedup_batch1": "× faster (b1)", "interpreter": "kernels (b1)",
    "throughput_batch64": "batch-64 ex/s",
}


def file_sizes(path: str | Path) -> dict:
    """Raw and gzip-compressed size of a file (gzip is where sparsity shows as bytes)."""
    data = Path(path).read_bytes()
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9))}


def file_sizes_of_directory(path: str | Path) -> dict:
    """Raw and gzip size of a directory (a SavedModel): the sum over its files."""
    files = [f for f in sorted(Path(path).rglob("*")) if f.is_file()]
    sizes = [file_sizes(f) for f in files]
    return {"bytes": sum(s["bytes"] for s in sizes),
            "gzip_bytes": sum(s["gzip_bytes"] for s in sizes)}


def median_latency_ms(call, calls: int = 200, warmup: int = 10) -> float:
    """Median wall time of `call()` in milliseconds over `calls` runs, after a warm-up."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def throughput(call, examples_per_call: int, calls: int = 20) -> float:
    """Examples per second of `call()` (one warm-up call first)."""
    call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return examples_per_call * calls / (time.perf_counter() - start)


def measure_tflite(
    batch1: bytes, batch64: bytes, test_ids: np.ndarray, y_test: np.ndarray, labels: list[str],
    *, latency_calls: int = 200, throughput_calls: int = 20, num_threads: int = 1,
) -> dict:
    """Accuracy, macro-F1, latency and throughput of one TFLite artifact on the test split.

    The artifact runs with XNNPACK (TFLite's default CPU delegate) and with TFLite's builtin
    kernels alone, and is reported as it is best deployed: on the kernels that run the whole
    test split and give the lower batch-1 latency. On small unrolled graphs XNNPACK's per-op
    overhead can make float32 slower, and an int8 speed-up measured against that handicap
    would flatter int8. Throughput comes from the batch-64 model on the same kernels.
    """
    from tfnlp.compression.tflite import TFLiteClassifier

    runs, errors = {}, {}
    for kernels in ("xnnpack", "builtin"):
        xnnpack = kernels == "xnnpack"
        single = TFLiteClassifier(batch1, num_threads=num_threads, xnnpack=xnnpack)
        if xnnpack and not single.xnnpack:
            errors[kernels] = "XNNPACK refused the graph"
            continue
        evaluator = TFLiteClassifier(batch64, num_threads=num_threads, xnnpack=xnnpack)
        try:
            predictions = evaluator.predict_ids(test_ids)
            latency = median_latency_ms(lambda c=single: c.logits(test_ids[:1]), latency_calls)
        except RuntimeError as error:
            # e.g. the builtin int8 DIV kernel rejects a quantized divisor whose raw value
            # is 0 (a transformer's masked mean pooling) that XNNPACK computes.
            errors[kernels] = str(error).strip().splitlines()[0][:300]
            continue
        runs[kernels] = (latency, predictions, evaluator)
    if not runs:
        raise RuntimeError(f"The TFLite model runs on neither kernel set: {errors}")
    interpreter = min(runs, key=lambda kernels: runs[kernels][0])
    latency, predictions, evaluator = runs[interpreter]
    metrics = classification_metrics(y_test, predictions, labels)
    batch = np.resize(test_ids, (evaluator.batch_size, test_ids.shape[1])).astype(np.int32)
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "interpreter": interpreter,
        "latency_ms_batch1": latency,
        "latency_ms_batch1_xnnpack": runs["xnnpack"][0] if "xnnpack" in runs else None,
        "latency_ms_batch1_builtin": runs["builtin"][0] if "builtin" in runs else None,
        "kernel_errors": errors,
        "throughput_batch64": throughput(
            lambda: evaluator.logits(batch), evaluator.batch_size, throughput_calls
        ),
    }


def measure_saved_model(
    path: Path, test_texts: list[str], y_test: np.ndarray, labels: list[str],
    *, latency_calls: int = 200, throughput_calls: int = 20,
) -> dict:
    """The same measurements for an exported SavedModel (strings in: preprocessing included)."""
    from tfnlp.backend import tf
    from tfnlp.serving import load_exported

    loaded = load_exported(path)
    serve = loaded.signatures["serving_default"]
    predicted = np.concatenate([
        serve(text=tf.constant(test_texts[i:i + 256]))["label_id"].numpy()
        for i in range(0, len(test_texts), 256)
    ])
    metrics = classification_metrics(y_test, predicted, labels)
    one = tf.constant(test_texts[:1])
    batch = tf.constant(list(np.resize(np.array(test_texts, dtype=object), 64)))
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "latency_ms_batch1": median_latency_ms(lambda: serve(text=one), latency_calls),
        "throughput_batch64": throughput(lambda: serve(text=batch), 64, throughput_calls),
    }


def recommend(artifacts: dict, reference: str = "float32", accuracy_budget: float = 0.01):
    """The smallest (gzip) TFLite artifact within the accuracy budget and not slower.

    Candidates must have `accuracy >= reference accuracy - accuracy_budget` and a batch-1
    latency no higher than the reference's; the reference itself always qualifies, so a
    slower artifact is never recommended.

    Returns:
        `(name, reason)`.
    """
    base = artifacts[reference]
    candidates = [
        name for name, entry in artifacts.items()
        if entry.get("format") == "tflite"
        and entry["accuracy"] >= base["accuracy"] - accuracy_budget
        and entry["latency_ms_batch1"] <= base["latency_ms_batch1"]
    ]
    best = min(candidates, key=lambda name: (artifacts[name]["gzip_bytes"], name))
    entry = artifacts[best]
    reason = (
        f"smallest TFLite artifact ({entry['gzip_bytes']} gzip bytes) with accuracy "
        f"{entry['accuracy']:.4f} >= {base['accuracy']:.4f} - {accuracy_budget} and batch-1 "
        f"latency {entry['latency_ms_batch1']:.3f} ms <= {reference}'s "
        f"{base['latency_ms_batch1']:.3f} ms"
    )
    return best, reason


def add_ratios(artifacts: dict, reference: str = "float32") -> None:
    """Adds gzip size and batch-1 speed ratios against the reference to every artifact."""
    base = artifacts[reference]
    for entry in artifacts.values():
        entry["size_ratio_gzip"] = base["gzip_bytes"] / entry["gzip_bytes"]
        entry["speedup_batch1"] = base["latency_ms_batch1"] / entry["latency_ms_batch1"]
        entry["accuracy_drop_points"] = 100.0 * (base["accuracy"] - entry["accuracy"])


def markdown_table(artifacts: dict) -> str:
    """The artifacts as a Markdown table, one row each."""
    header = "| artifact | format | " + " | ".join(_COLUMNS.values()) + " |"
    lines = [header, "|" + "---|" * (len(_COLUMNS) + 2)]
    for name, entry in artifacts.items():
        cells = []
        for key in _COLUMNS:
            value = entry.get(key)
            if value is None:
                cells.append("")
            elif key in ("accuracy", "macro_f1"):
                cells.append(f"{value:.4f}")
            elif key in ("bytes", "gzip_bytes"):
                cells.append(f"{value:,}")
            elif key == "interpreter":
                cells.append(value)
            elif key == "throughput_batch64":
                cells.append(f"{value:,.0f}")
            elif key == "latency_ms_batch1":
                cells.append(f"{value:.3f}")
            else:
                cells.append(f"{value:.2f}")
        lines.append(f"| {name} | {entry.get('format', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_size_vs_accuracy(artifacts: dict, output: Path, title: str) -> Path:
    """Scatter of gzip size (log scale) against test accuracy, one labelled point per artifact."""
    from tfnlp.evaluation.plots import _pyplot

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, entry in artifacts.items():
        if "gzip_bytes" not in entry:
            continue
        marker = "o" if entry.get("format") == "tflite" else "s"
        axis.scatter(entry["gzip_bytes"], entry["accuracy"], marker=marker)
        axis.annotate(name, (entry["gzip_bytes"], entry["accuracy"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("size on disk, gzip-compressed (bytes, log scale)")
    axis.set_ylabel("test accuracy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Writes compression_report.json, compression_report.md and size_vs_accuracy.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "compression_report.json",
        "markdown": out_dir / "compression_report.md",
        "plot": out_dir / "size_vs_accuracy.png",
    }
    atomic.write_text(paths["json"], json.dumps(report, indent=2, sort_keys=False) + "\n")
    notes = "\n".join(f"- {note}" for note in report.get("notes", []))
    atomic.write_text(
        paths["markdown"],
        f"# Compression report: {report['pipeline']} ({report['model']})\n\n"
        + markdown_table(report["artifacts"])
        + f"\nRecommended: **{report['recommended']}** — {report['recommended_reason']}.\n"
        + (f"\n{notes}\n" if notes else ""),
    )
    plot_size_vs_accuracy(report["artifacts"], paths["plot"],
                          f"{report['pipeline']}: size vs accuracy")
    return paths
