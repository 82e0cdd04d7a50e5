"""`tfnlp bench parallel`: data, model, hybrid and pipeline parallelism side by side.

Each kind trains the same pipeline (same data, seed and global batch) in its own fresh
process, since the devices and DTensor are fixed for a process's lifetime. For each the JSON
gives examples/s, the parameter bytes the fullest device holds (read from the variables'
real shards or placements) and the gradient bytes each device all-reduces per step; the
pipeline adds its stage split. On one shared CPU no speed-up is expected: what must show is
the memory per device and the communication volume. A kind this TensorFlow cannot train
correctly is refused at validation, and the JSON says why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from tfnlp import atomic
from tfnlp.bench.distribute import _train_command, steady_examples_per_second
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.config import load_pipeline
from tfnlp.config.loading import ConfigError

# name -> --set overrides (on top of the caller's)
CONFIGURATIONS = {
    "one_device": ["distribute.strategy=default"],
    "data": ["distribute.strategy=mirrored", "distribute.cpu_replicas=2"],
    "data_fp16_allreduce": ["distribute.strategy=mirrored", "distribute.cpu_replicas=2",
                            "distribute.all_reduce.dtype=float16"],
    "model": ["distribute.strategy=dtensor", "distribute.mesh={batch: 1, model: 2}"],
    "hybrid": ["distribute.strategy=dtensor", "distribute.mesh={batch: 2, model: 2}"],
    "pipeline": ["distribute.strategy=default",
                 "distribute.pipeline={stages: 2, micro_batches: 4}"],
}


def _measure(pipeline: str, overrides: list[str], run_dir: Path, log_file: Path,
             timeout: float) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)  # a leftover backup would resume
    start = time.perf_counter()
    with open(log_file, "w") as log:
        status = subprocess.run(_train_command(pipeline, overrides, run_dir), stdout=log,
                                stderr=subprocess.STDOUT, timeout=timeout).returncode
    if status != 0:
        raise RuntimeError(f"bench parallel: training failed with status {status}; see "
                           f"{log_file}.")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    train = metrics["train"]
    parallelism = train["parallelism"]
    return {
        "examples_per_second": steady_examples_per_second(run_dir / "train.log")
        or train["examples_per_second"],
        "parameter_bytes_per_device": parallelism["parameter_bytes_per_device"],
        "allreduce_bytes_per_step": parallelism["allreduce_bytes_per_step"],
        "devices": parallelism["devices"],
        "parallelism": parallelism,
        "train_seconds": train["train_seconds"],
        "wall_seconds": time.perf_counter() - start,
        "peak_rss_mb": metrics["memory"]["peak_rss_mb"],
    }


def run_parallel_benchmark(pipeline: str, overrides: list[str], out_dir: str | Path, *,
                           timeout: float = 3600) -> dict:
    """Trains `pipeline` under each kind of parallelism; writes `bench_parallel.json` + PNG.

    Args:
        pipeline: the pipeline YAML file.
        overrides: `--set` overrides applied to every kind (data size, epochs, ...).
        out_dir: where the JSON, the PNG, the logs and the runs go.
        timeout: seconds allowed per kind.

    Returns:
        The JSON written: `runs.<kind>` with `examples_per_second`,
        `parameter_bytes_per_device` and `allreduce_bytes_per_step`, or `refused` (why).

    Raises:
        RuntimeError: a kind that validated failed to train (its log file is named).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, extra in CONFIGURATIONS.items():
        print(f"bench parallel: {name} ...", flush=True)
        try:
            load_pipeline(pipeline, list(overrides) + extra)
        except ConfigError as error:
            runs[name] = {"refused": str(error)}
            print(f"  refused: {error}", flush=True)
            continue
        runs[name] = _measure(pipeline, list(overrides) + extra, out_dir / "runs" / name,
                              out_dir / f"{name}.log", timeout)
        print(f"  {runs[name]['examples_per_second']:.1f} examples/s, "
              f"{runs[name]['parameter_bytes_per_device'] / 1e6:.3f} MB of parameters on the "
              f"fullest device, {runs[name]['allreduce_bytes_per_step'] / 1e6:.3f} MB "
              "all-reduced per step", flush=True)
    result = {
        "benchmark": "parallel",
        "pipeline": str(pipeline),
        "overrides": list(overrides),
        "machine": machine_summary(),
        "runs": runs,
        "note": "examples_per_second: training epochs after the first, validation excluded; "
                "parameter_bytes_per_device: the fullest device's variables; "
                "allreduce_bytes_per_step: gradient bytes each device sends into the "
                "all-reduce (DTensor's activation collectives inside a sharded layer are "
                "not counted). On one shared CPU no speed-up is expected.",
    }
    atomic.write_json(out_dir / "bench_parallel.json", result)
    plot_parallel_benchmark(result, out_dir / "bench_parallel.png")
    print(f"wrote {out_dir / 'bench_parallel.json'} and {out_dir / 'bench_parallel.png'}")
    return result


def plot_parallel_benchmark(result: dict, output: Path) -> Path:
    """Examples/s, parameter MB per device and all-reduce MB per step, per kind."""
    measured = {name: run for name, run in result["runs"].items() if "refused" not in run}
    return bar_chart(output, f"tfnlp bench parallel: {Path(result['pipeline']).name}", [
        ("training examples / s", {n: r["examples_per_second"] for n, r in measured.items()}),
        ("parameter MB on the fullest device",
         {n: r["parameter_bytes_per_device"] / 1e6 for n, r in measured.items()}),
        ("gradient MB all-reduced per step",
         {n: r["allreduce_bytes_per_step"] / 1e6 for n, r in measured.items()}),
    ], highlight="one_device")
