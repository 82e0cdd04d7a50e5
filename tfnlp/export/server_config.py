"""The TF-Serving flag files beside the export root, written once and then left to the user.

* `batching_parameters.txt` (`--enable_batching --batching_parameters_file=…`): CPU
  defaults after TF-Serving's batching guide — one batch thread per core, no waiting for a
  batch to fill (`batch_timeout_micros: 0`: on a CPU a late batch costs more latency than a
  full one saves), at most `MAX_BATCH_SIZE` requests per batch.
* `monitoring.config` (`--monitoring_config_file=…`, needs `--rest_api_port`): Prometheus
  metrics at `PROMETHEUS_PATH`.

Both are text protos (`BatchingParameters`, `MonitoringConfig`). A file that exists is never
overwritten, so edits (say, a measured `max_batch_size`) survive later exports.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfnlp.atomic import write_text

BATCHING_FILE = "batching_parameters.txt"
MONITORING_FILE = "monitoring.config"
# Texts merged into one batch: where in-process throughput stopped rising in `tfnlp bench
# predict` (BiLSTM export, 2 cores: 6,602 texts/s at 64, 8,147 at 128, 8,126 at 256).
MAX_BATCH_SIZE = 128
MAX_ENQUEUED_BATCHES = 100
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def batching_parameters_text(cores: int | None = None) -> str:
    """The `BatchingParameters` text proto for a CPU server with `cores` cores.

    Example:
        >>> print(batching_parameters_text(2))
        max_batch_size { value: 128 }
        batch_timeout_micros { value: 0 }
        num_batch_threads { value: 2 }
        max_enqueued_batches { value: 100 }
        <BLANKLINE>
    """
    cores = cores or os.cpu_count() or 1
    return (f"max_batch_size {{ value: {MAX_BATCH_SIZE} }}\n"
            "batch_timeout_micros { value: 0 }\n"
            f"num_batch_threads {{ value: {cores} }}\n"
            f"max_enqueued_batches {{ value: {MAX_ENQUEUED_BATCHES} }}\n")


def monitoring_config_text() -> str:
    """The `MonitoringConfig` text proto that turns on Prometheus metrics."""
    return f'prometheus_config {{\n  enable: true\n  path: "{PROMETHEUS_PATH}"\n}}\n'


def server_config_texts() -> list[tuple[str, str]]:
    """(file name, text) of the batching and monitoring flag files."""
    return [(BATCHING_FILE, batching_parameters_text()),
            (MONITORING_FILE, monitoring_config_text())]


def write_server_configs(export_root: str | Path) -> list[Path]:
    """Writes the batching and monitoring files under `export_root` where they are missing.

    Returns:
        The paths of both files.
    """
    root = Path(export_root)
    paths = []
    for name, text in server_config_texts():
        path = root / name
        if not path.exists():
            write_text(path, text)
        paths.append(path)
    return paths
