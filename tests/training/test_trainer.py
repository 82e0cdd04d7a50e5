import csv
import json

import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.backend import keras
from tfnlp.config import load_pipeline
from tfnlp.training.run import train_pipeline
from tfnlp.training.trained import evaluate_run, load_trained

PNG = b"\x89PNG\r\n\x1a\n"


def test_run_directory_is_complete(tiny_run):
    run = tiny_run.run_dir
    for name in ("config.yaml", "vocab.txt", "labels.json", "splits.json", "data_report.json",
                 "history.csv", "metrics.json",
                 "checkpoints/best.index", "checkpoints/latest.index"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()  # removed once training finished
    assert json.loads((run / "splits.json").read_text()) == {
        "seed": 42, "train": 479, "validation": 61, "test": 60}
    assert json.loads((run / "labels.json").read_text()) == ["negative", "neutral", "positive"]
    report = json.loads((run / "data_report.json").read_text())
    assert report["rows_kept"] == 38158 and report["replaced_characters"] > 20_000
    for plot in ("training_curves.png", "confusion_matrix.png"):
        assert (run / plot).read_bytes()[:8] == PNG
    with open(run / "history.csv") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["0", "1"]


def test_metrics_json_has_the_promised_keys(tiny_run):
    metrics = json.loads((tiny_run.run_dir / "metrics.json").read_text())
    assert metrics == tiny_run.metrics
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert 0.0 <= metrics["test"]["macro_f1"] <= 1.0
    assert set(metrics["test"]["per_class"]) == {"negative", "neutral", "positive"}
    matrix = metrics["test"]["confusion_matrix"]
    assert sum(map(sum, matrix)) == 60
    assert metrics["test"]["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(3)) / 60)
    baseline = metrics["baseline"]["tfidf_logreg"]
    assert 0.3 < baseline["accuracy"] <= 1.0 and 0.0 < baseline["macro_f1"] <= 1.0
    assert metrics["train"]["examples_per_second"] > 0
    assert metrics["train"]["epochs_run"] == 2


def test_metrics_json_has_phase_timings_that_add_up(tiny_run):
    timings = tiny_run.metrics["timings"]
    phases = {"startup_s", "data_s", "vocabulary_s", "model_s", "input_pipeline_s",
              "fit_steps_s", "fit_overhead_s", "best_weights_s", "evaluation_s", "baseline_s",
              "plots_s", "export_s", "side_process_wait_s"}
    assert set(timings) == phases | {"total_s"}
    assert all(timings[name] >= 0 for name in phases)
    assert timings["fit_steps_s"] == pytest.approx(tiny_run.metrics["train"]["train_seconds"],
                                                   abs=1e-3)
    # Phases are disjoint (the baseline is not also counted in evaluation): they fit in the
    # process's lifetime, which also held the other tests of this session.
    assert sum(timings[name] for name in phases) <= timings["total_s"]
    assert tiny_run.metrics["memory"]["peak_rss_mb"] > 100  # TensorFlow alone needs more


def test_best_checkpoint_reloads_to_the_same_predictions(tiny_run):
    trained = load_trained(tiny_run.run_dir)
    model, config, labels = trained.model, trained.config, trained.task.labels
    texts = keras.backend.constant(["what a great day", "awful"], dtype="string")
    assert labels == ["negative", "neutral", "positive"]
    assert config.name == "tweets_bilstm"
    assert (model(texts).numpy() == tiny_run.model(texts).numpy()).all()


def test_evaluate_run_reproduces_test_metrics(tiny_run):
    metrics = evaluate_run(tiny_run.run_dir)
    assert metrics["test"]["accuracy"] == tiny_run.metrics["test"]["accuracy"]
    # The run's baseline came from its side process, this one was fitted here: the same fit.
    here, side = metrics["baseline"]["tfidf_logreg"], tiny_run.metrics["baseline"]["tfidf_logreg"]
    assert {k: v for k, v in here.items() if k != "fit_seconds"} == {
        k: v for k, v in side.items() if k != "fit_seconds"}
    assert (tiny_run.run_dir / "evaluation.json").is_file()


class StopAfterEpoch(keras.callbacks.Callback):
    """Simulates a crash: raises once `epoch` has finished (and been backed up)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_interrupted_run_resumes_instead_of_restarting(tmp_path, caplog):
    config = load_pipeline(
        REPO / "pipelines" / "tweets_lstm.yaml",
        TINY_OVERRIDES + ["train.epochs=3", "model.num_layers=1", "data.limit=300"],
    )
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_pipeline(config, run_dir, export=False, extra_callbacks=[StopAfterEpoch(2)])
    assert (run_dir / "backup").is_dir()
    with caplog.at_level("INFO", logger="tfnlp"):
        result = train_pipeline(config, run_dir, export=False)
    assert "resuming from the backup" in caplog.text
    # Only the third epoch ran again: the first two came from the backup.
    assert result.metrics["train"]["epochs_run"] == 1
    with open(run_dir / "history.csv") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["0", "1", "2"]
    assert not (run_dir / "backup").exists()


class PoisonWeights(keras.callbacks.Callback):
    """Makes the loss NaN in the second epoch, as a diverging run would."""

    def on_train_batch_begin(self, batch, logs=None):
        if self.model.history.epoch and batch == 2:
            weights = self.model.get_layer("logits").get_weights()
            self.model.get_layer("logits").set_weights([w * float("nan") for w in weights])


def test_nan_stops_the_run_keeps_the_last_good_checkpoint_and_says_what_to_try(tmp_path):
    import numpy as np

    config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml",
                           TINY_OVERRIDES + ["model.num_layers=1", "data.limit=300"])
    with pytest.raises(FloatingPointError, match="lower `train.learning_rate`") as error:
        train_pipeline(config, tmp_path / "run", export=False, extra_callbacks=[PoisonWeights()])
    assert "float32" in str(error.value)
    model = load_trained(tmp_path / "run").model
    assert all(np.isfinite(w).all() for w in model.get_weights())
