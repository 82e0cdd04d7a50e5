"""Shared fixtures. TensorFlow sees two logical CPUs so Mirrored tests can run 2 replicas."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfnlp.backend import tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))

# A pipeline small enough to train in seconds: 600 tweets, a 300-token vocabulary.
TINY_OVERRIDES = [
    "data.limit=600",
    "preprocessing.vocab_size=300",
    "preprocessing.sequence_length=32",
    "model.embedding_dim=16",
    "model.units=8",
    "train.epochs=2",
    "train.batch_size=32",
    "train.early_stopping_patience=5",
]


def run_python(code: str, *args: str, timeout: int = 240, env=None) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh Python process (no state shared with the test process)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def run_cli(*args: str, timeout: int = 300, cwd=None) -> subprocess.CompletedProcess:
    """Runs `python -m tfnlp ARGS` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "tfnlp", *args], capture_output=True, text=True,
        timeout=timeout, cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny BiLSTM pipeline trained, evaluated and exported once for the whole session."""
    from tfnlp.config import load_pipeline
    from tfnlp.training.run import train_pipeline

    root = tmp_path_factory.mktemp("tiny_run")
    config = load_pipeline(
        REPO / "pipelines" / "tweets_bilstm.yaml",
        # Bucketing on (the recurrent default), though the full default pipeline turns it off.
        TINY_OVERRIDES + ["train.length_bucketing=true", f"export.dir={root / 'saved_models'}"],
    )
    return train_pipeline(config, root / "run")


@pytest.fixture(autouse=True)
def cluster_environment_restored():
    """`tf_config()` writes the cluster it built (from Slurm, or a sparseCluster) back to
    `TF_CONFIG` for TensorFlow: a test that leaves it set would turn every later training run
    in this process, and every child process, into a cluster task waiting for its peers."""
    saved = {name: os.environ.get(name) for name in ("TF_CONFIG",)}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
