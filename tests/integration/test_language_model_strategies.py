"""The language model on the shared run lifecycle: Mirrored over 2 CPU replicas, a real
2-worker MultiWorkerMirrored cluster and parameter-server training, each exporting once."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli
from tests.integration.test_clusters import launch

PIPELINE = str(REPO / "pipelines" / "tweets_lm_char.yaml")
# A small character LSTM: each run takes seconds of training on 2 cores.
TINY_LM = ["data.limit=2000", "train.epochs=1", "language_model.sequence_length=32",
           "language_model.stride=32", "model.embedding_dim=16", "model.units=32",
           "model.num_layers=1", "train.batch_size=32"]


def assert_one_export_and_metrics(run_dir, export_dir, strategy, replicas):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "language_model"
    assert metrics["train"]["strategy"] == strategy
    assert metrics["train"]["replicas"] == replicas
    assert metrics["train"]["epochs_run"] == 1
    assert 1.0 < metrics["test"]["perplexity"] < metrics["vocabulary_size"]
    assert sorted(p.name for p in (export_dir / "tweets_lm_char").iterdir()) == ["1"]
    assert metrics["export"]["path"] == str(export_dir / "tweets_lm_char" / "1")
    for name in ("config.yaml", "vocab.txt", "splits.json", "history.csv",
                 "checkpoints/best.index", "training_curves.png"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("workertemp_*")) and not (run_dir / "backup").exists()
    return metrics


def test_language_model_trains_mirrored_on_two_cpu_replicas(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    result = run_cli("train", PIPELINE, "--run-dir", str(run_dir), "--set", *TINY_LM,
                     "distribute.strategy=mirrored", "distribute.cpu_replicas=2",
                     f"export.dir={export_dir}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test perplexity" in result.stdout and "export" in result.stdout
    assert_one_export_and_metrics(run_dir, export_dir, "mirrored", 2)


@pytest.mark.slow  # a 2-process cluster (~2 min on 2 shared cores); run with -m slow
def test_language_model_trains_on_a_two_worker_cluster(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    command = [sys.executable, "-m", "tfnlp", "launch", "--workers", "2", PIPELINE,
               "--run-dir", str(run_dir), "--set", *TINY_LM, f"export.dir={export_dir}",
               "--timeout", "500"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert_one_export_and_metrics(run_dir, export_dir, "multi_worker_mirrored", 2)


@pytest.mark.slow  # four processes (~2 min on 2 shared cores); run with -m slow
def test_language_model_trains_with_a_parameter_server(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    process, lines = launch(run_dir, export_dir, "--workers", "2", "--ps", "1",
                            pipeline=PIPELINE, overrides=TINY_LM)
    assert process.wait(timeout=500) == 0, "".join(lines)[-4000:]
    assert_one_export_and_metrics(run_dir, export_dir, "parameter_server", 1)
