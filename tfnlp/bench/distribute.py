"""`tfnlp bench distribute`: training examples/s for one device, Mirrored and MultiWorker.

Each configuration trains the same pipeline in fresh processes (a strategy is fixed for a
process's lifetime; multi-worker needs a cluster), and the figure is the chief's
`metrics.json` `train.examples_per_second` (training time only, validation excluded).
On a 2-core CPU no speed-up is expected: the point is the scaling efficiency on real
multi-GPU / multi-host machines (NVIDIA's TF GNMT LSTM reaches 75-83 % on 8 GPUs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tfnlp import atomic
from tfnlp.bench.measure import bar_chart
from tfnlp.training.cluster import launch_cluster

# name -> (extra --set overrides, workers in a local cluster or 0 for one process)
CONFIGURATIONS = {
    "one_device": (["distribute.strategy=one_device"], 0),
    "mirrored_2cpu": (["distribute.strategy=mirrored", "distribute.cpu_replicas=2"], 0),
    "multi_worker_2": (["distribute.strategy=multi_worker_mirrored"], 2),
}


_EPOCH_LINE = re.compile(r"INFO epoch (\d+)/\d+: .*\(([\d.]+) s, ([\d.]+) examples/s\)")


def steady_examples_per_second(train_log: Path) -> float | None:
    """Examples/s over the epochs after the first (which also traces the graphs).

    Read from the chief's `train.log` epoch lines; None with fewer than two epochs.
    """
    examples = seconds = 0.0
    for match in _EPOCH_LINE.finditer(train_log.read_text() if train_log.is_file() else ""):
        if int(match.group(1)) > 1:
            seconds += float(match.group(2))
            examples += float(match.group(2)) * float(match.group(3))
    return examples / seconds if seconds else None


def _train_command(pipeline: str, overrides: list[str], run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "tfnlp", "train", str(pipeline), "--set", *overrides,
            "--run-dir", str(run_dir), "--no-export"]


def run_distribute_benchmark(
    pipeline: str, overrides: list[str], out_dir: str | Path, *, timeout: float = 3600,
) -> dict:
    """Trains `pipeline` under each configuration and writes `bench_distribute.json` + PNG.

    Args:
        pipeline: the pipeline YAML file.
        overrides: `--set` overrides applied to every configuration (data size, epochs, ...).
        out_dir: where the JSON, the PNG and the runs' directories go.
        timeout: seconds allowed per configuration.

    Returns:
        The JSON written: `runs.<name>.examples_per_second` and `.ratio_to_one_device`.

    Raises:
        RuntimeError: a configuration failed (its log file is named).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, (extra, workers) in CONFIGURATIONS.items():
        run_dir = out_dir / "runs" / name
        # A fresh run: a leftover backup would resume, a leftover log would mix in.
        shutil.rmtree(run_dir, ignore_errors=True)
        command = _train_command(pipeline, list(overrides) + extra, run_dir)
        log_file = out_dir / f"{name}.log"
        print(f"bench distribute: {name} ...", flush=True)
        start = time.perf_counter()
        with open(log_file, "w") as log:
            if workers:
                status = launch_cluster(command, workers=workers, out=log, timeout=timeout)
            else:
                status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                        timeout=timeout).returncode
        if status != 0:
            raise RuntimeError(f"bench distribute: {name} failed with status {status}; "
                               f"see {log_file}.")
        train = json.loads((run_dir / "metrics.json").read_text())["train"]
        steady = steady_examples_per_second(run_dir / "train.log")
        runs[name] = {
            "examples_per_second": steady or train["examples_per_second"],
            "examples_per_second_all_epochs": train["examples_per_second"],
            "replicas": train["replicas"],
            "workers": max(1, workers),
            "train_seconds": train["train_seconds"],
            "wall_seconds": time.perf_counter() - start,
        }
        print(f"  {runs[name]['examples_per_second']:.1f} examples/s "
              f"({train['replicas']} replica(s))", flush=True)
    base = runs["one_device"]["examples_per_second"]
    for run in runs.values():
        run["ratio_to_one_device"] = run["examples_per_second"] / base if base else None
        # Scaling efficiency: the speed-up per replica (1.0 = linear scaling).
        run["efficiency"] = run["ratio_to_one_device"] / run["replicas"] if base else None
    result = {
        "benchmark": "distribute",
        "pipeline": str(pipeline),
        "overrides": list(overrides),
        "runs": runs,
        "note": "examples_per_second: training epochs after the first (the first also traces; "
                "with one epoch it is included); validation excluded. On one shared CPU no "
                "speed-up is expected.",
    }
    atomic.write_json(out_dir / "bench_distribute.json", result)
    plot_distribute_benchmark(result, out_dir / "bench_distribute.png")
    for name, run in runs.items():
        print(f"{name:>15}: {run['examples_per_second']:9.1f} examples/s  "
              f"x{run['ratio_to_one_device']:.2f} of one_device")
    print(f"wrote {out_dir / 'bench_distribute.json'} and {out_dir / 'bench_distribute.png'}")
    return result


def plot_distribute_benchmark(result: dict, output: Path) -> Path:
    """Bar charts of examples/s and of the ratio to one_device, per configuration."""
    runs = result["runs"]
    return bar_chart(output, f"tfnlp bench distribute: {Path(result['pipeline']).name}", [
        ("training examples / s", {n: r["examples_per_second"] for n, r in runs.items()}),
        ("× one_device", {n: r["ratio_to_one_device"] for n, r in runs.items()}),
    ], highlight="one_device")
