"""`tfnlp bench tflite`: one `.tflite` artifact on LiteRT and on `tf.lite.Interpreter`.

Both interpreters run the same file in one process, each on XNNPACK and on the builtin
kernels: the median batch-1 latency of `--calls` invocations on the same ids, and whether
their logits agree. Where LiteRT is not installed its rows say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfnlp.atomic import write_json
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.compression.interpreter import RUNTIMES, TFLiteClassifier
from tfnlp.compression.measure import median_latency_ms


def bench_tflite(model_file: str | Path, out_dir: str | Path, *, calls: int = 200) -> dict:
    """Times the artifact on every interpreter and kernel set; JSON + PNG.

    Returns:
        The report written to `bench_tflite.json`.
    """
    flatbuffer = Path(model_file).read_bytes()
    runs, reference = {}, None
    for runtime in RUNTIMES:
        for kernels in ("xnnpack", "builtin"):
            name = f"{runtime}_{kernels}"
            try:
                classifier = TFLiteClassifier(flatbuffer, xnnpack=kernels == "xnnpack",
                                              runtime=runtime)
            except (ImportError, RuntimeError) as error:
                runs[name] = {"error": str(error).strip().splitlines()[0][:300]}
                continue
            ids = np.random.default_rng(0).integers(
                2, 50, (classifier.batch_size, classifier.sequence_length)).astype(np.int32)
            logits = classifier.logits(ids)
            reference = logits if reference is None else reference
            runs[name] = {
                "kernels": "xnnpack" if classifier.xnnpack else "builtin",
                "latency_ms": median_latency_ms(lambda c=classifier, x=ids: c.logits(x), calls),
                "max_abs_logit_difference": float(np.max(np.abs(logits - reference))),
            }
    report = {"model": str(model_file), "calls": calls, "runs": runs,
              "machine": machine_summary()}
    out = Path(out_dir)
    write_json(out / "bench_tflite.json", report)
    bar_chart(out / "bench_tflite.png", f"{Path(model_file).name}: batch-1 latency",
              [("ms (median)", {k: r["latency_ms"] for k, r in runs.items() if "error" not in r})])
    return report


def summary_lines(report: dict) -> list[str]:
    return [f"{name:<22}" + (f"{run['latency_ms']:.3f} ms on {run['kernels']}, logits "
                             f"within {run['max_abs_logit_difference']:.1e}"
                             if "error" not in run else f"failed: {run['error']}")
            for name, run in report["runs"].items()]
