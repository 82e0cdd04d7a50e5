"""Measuring compressed artifacts: size on disk, accuracy, latency and throughput.

TFLite artifacts are measured with the TFLite interpreter on the run's test split (as ids),
SavedModels through their serving signature (strings in, preprocessing included).
"""

from __future__ import annotations

import gzip
import statistics
import time
from pathlib import Path

import numpy as np

from tfnlp.evaluation.metrics import classification_metrics


def file_sizes(path: str | Path) -> dict:
    """Raw and gzip-compressed size of a file (gzip is where sparsity shows as bytes)."""
    data = Path(path).read_bytes()
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9))}


def file_sizes_of_directory(path: str | Path) -> dict:
    """Raw and gzip size of a directory (a SavedModel): the sum over its files."""
    files = [f for f in sorted(Path(path).rglob("*")) if f.is_file()]
    sizes = [file_sizes(f) for f in files]
    return {
        "bytes": sum(s["bytes"] for s in sizes),
        "gzip_bytes": sum(s["gzip_bytes"] for s in sizes),
    }


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
    batch1: bytes,
    batch64: bytes,
    test_ids: np.ndarray,
    y_test: np.ndarray,
    labels: list[str],
    *,
    latency_calls: int = 200,
    throughput_calls: int = 20,
    num_threads: int = 1,
) -> dict:
    """Accuracy, macro-F1, latency and throughput of one TFLite artifact on the test split.

    The artifact runs with XNNPACK (TFLite's default CPU delegate) and with TFLite's builtin
    kernels alone, and is reported as it is best deployed: on the kernels that run the whole
    test split and give the lower batch-1 latency. On small unrolled graphs XNNPACK's per-op
    overhead can make float32 slower, and an int8 speed-up measured against that handicap
    would flatter int8. Throughput comes from the batch-64 model on the same kernels.
    """
    from tfnlp.compression.interpreter import TFLiteClassifier

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
    path: Path,
    test_texts: list[str],
    y_test: np.ndarray,
    labels: list[str],
    *,
    latency_calls: int = 200,
    throughput_calls: int = 20,
) -> dict:
    """The same measurements for an exported SavedModel (strings in: preprocessing included)."""
    from tfnlp.backend import tf
    from tfnlp.serving import load_exported

    loaded = load_exported(path)
    serve = loaded.signatures["serving_default"]
    predicted = np.concatenate(
        [
            serve(text=tf.constant(test_texts[i : i + 256]))["label_id"].numpy()
            for i in range(0, len(test_texts), 256)
        ]
    )
    metrics = classification_metrics(y_test, predicted, labels)
    one = tf.constant(test_texts[:1])
    batch = tf.constant(list(np.resize(np.array(test_texts, dtype=object), 64)))
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "latency_ms_batch1": median_latency_ms(lambda: serve(text=one), latency_calls),
        "throughput_batch64": throughput(lambda: serve(text=batch), 64, throughput_calls),
    }
