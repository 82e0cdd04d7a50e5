"""`tfnlp bench train|preprocess` on tiny subsets: exit codes, JSON keys, PNGs (not timings)."""

import json

import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_preprocess_writes_json_and_png(tmp_path, capsys):
    assert main(["bench", "preprocess", "--out", str(tmp_path), "--limit", "300",
                 "--repeat", "2"]) == 0
    report = json.loads((tmp_path / "bench_preprocess.json").read_text())
    assert (tmp_path / "bench_preprocess.png").read_bytes()[:8] == PNG
    assert report["texts"] == 600 and 0.01 < report["megabytes"] < 0.2
    assert set(report["runs"]) == {"tfnlp", "fast_wordpiece_only", "nltk", "hf_tokenizers"}
    for name, run in report["runs"].items():
        assert run["mb_per_second"] == pytest.approx(report["megabytes"] / run["seconds"])
        assert run["tokens"] > 600, name  # several tokens per tweet
        assert report["ratios"].get(f"tfnlp / {name}", 1.0) > 0
    assert report["runs"]["nltk"]["stopwords"]
    # The same words' pieces, before the layer truncates to `sequence_length`.
    runs = report["runs"]
    assert runs["fast_wordpiece_only"]["tokens"] >= runs["tfnlp"]["tokens"]
    passes = report["passes_one_thread_seconds"]
    assert list(passes)[:2] == ["truncate", "repair_utf8"] and list(passes)[-2:] == [
        "split", "wordpiece"]
    assert "collapse_spaces" not in passes and all(s > 0 for s in passes.values())
    out = capsys.readouterr().out
    assert "tfnlp / nltk:" in out and "the layer's passes on one thread: truncate " in out


def test_bench_train_refuses_a_transformer(tmp_path, capsys):
    code = main(["bench", "train", str(REPO / "pipelines" / "tweets_transformer.yaml"),
                 "--out", str(tmp_path)])
    assert code == 1
    assert "`model.name` must be lstm or bilstm" in capsys.readouterr().err
    assert not (tmp_path / "bench_train.json").exists()


@pytest.mark.slow
def test_bench_train_writes_all_runs(tmp_path):
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("train.epochs")]
    assert main(["bench", "train", str(REPO / "pipelines" / "tweets_bilstm.yaml"), "--set",
                 *overrides, "data.limit=300", "train.epochs=2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench_train.json").read_text())
    assert (tmp_path / "bench_train.png").read_bytes()[:8] == PNG
    assert set(report["runs"]) == {
        "keras_baseline", "tfnlp_default", "tfnlp_float32", "tfnlp_float32_bucketed",
        "tfnlp_bf16_bucketed", "tfnlp_in_dataset", "tfnlp_jit_compile", "tfnlp_unrolled",
        "tfnlp_batch_4x"}
    for run in report["runs"].values():
        assert run["examples_per_second"] > 0 and 0.0 <= run["test_accuracy"] <= 1.0
        assert 0.0 <= run["padded_fraction"] < 1.0 and len(run["epoch_seconds_all"]) == 2
    runs = report["runs"]
    assert runs["keras_baseline"]["ratio_to_keras_baseline"] == 1.0
    assert runs["tfnlp_default"]["overrides"] == [] and runs["tfnlp_default"][
        "ratio_to_default"] == 1.0
    assert runs["tfnlp_bf16_bucketed"]["precision_policy"] == "mixed_bfloat16"
    assert runs["tfnlp_float32_bucketed"]["padded_fraction"] < runs["tfnlp_float32"][
        "padded_fraction"]
    # The unrolled run computes on every position up to sequence_length (32 here, which most
    # batches of tweets reach anyway; tests/data/test_bucketing.py checks the exact count).
    assert runs["tfnlp_unrolled"]["padded_fraction"] >= runs["tfnlp_float32"]["padded_fraction"]
    assert runs["tfnlp_batch_4x"]["overrides"] == [
        f"train.batch_size={4 * report['batch_size']}", "train.learning_rate=0.004"]
    assert runs["tfnlp_jit_compile"]["preprocessing_in_dataset"] is True
    assert report["ratios"]["tfnlp_default / keras_baseline examples/s"] == pytest.approx(
        runs["tfnlp_default"]["ratio_to_keras_baseline"])


@pytest.mark.slow
def test_bench_train_makes_only_the_runs_asked_for(tmp_path, capsys):
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("train.epochs")]
    assert main(["bench", "train", str(REPO / "pipelines" / "tweets_bilstm.yaml"), "--set",
                 *overrides, "data.limit=200", "train.epochs=2", "--out", str(tmp_path),
                 "--runs", "tfnlp_default"]) == 0
    report = json.loads((tmp_path / "bench_train.json").read_text())
    assert set(report["runs"]) == {"keras_baseline", "tfnlp_default"}
    assert "tfnlp_default / keras_baseline examples/s" in report["ratios"]
    assert "tfnlp_default " in capsys.readouterr().out


def test_bench_train_refuses_an_unknown_run(tmp_path, capsys):
    assert main(["bench", "train", str(REPO / "pipelines" / "tweets_bilstm.yaml"),
                 "--out", str(tmp_path), "--runs", "tfnlp_default", "tfnlp_turbo"]) == 1
    error = capsys.readouterr().err
    assert "`--runs` must name runs among tfnlp_default, tfnlp_float32," in error
    assert "Received: tfnlp_turbo." in error and not (tmp_path / "bench_train.json").exists()


def test_bench_vocabulary_times_both_learners_at_each_size(tmp_path, capsys):
    assert main(["bench", "vocabulary", "--set", "data.limit=300", "preprocessing.vocab_size=200",
                 "--out", str(tmp_path), "--repeats", "1", "2"]) == 0
    report = json.loads((tmp_path / "bench_vocabulary.json").read_text())
    assert (tmp_path / "bench_vocabulary.png").read_bytes()[:8] == PNG
    assert set(report["runs"]) == {"tensorflow_text_1x", "tensorflow_text_2x",
                                   "huggingface_1x", "huggingface_2x",
                                   "tensorflow_text_library_search_1x",
                                   "tensorflow_text_library_search_2x"}
    assert report["runs"]["tensorflow_text_2x"]["identical_to_library_search"] is True
    one, two = report["runs"]["tensorflow_text_1x"], report["runs"]["tensorflow_text_2x"]
    assert two["texts"] == 2 * one["texts"] == 2 * 239  # the stratified ~80% split of 300
    assert two["distinct_words"] == one["distinct_words"]  # repeating adds counts, not words
    for run in report["runs"].values():
        assert run["learn_seconds"] > 0 and 2 < run["vocabulary_size"] <= 200
    assert "cpu_vector_flags" in report["machine"]
    assert "huggingface_2x" in capsys.readouterr().out


def test_bench_predict_times_the_file_path_beside_the_bare_model(tiny_run, tmp_path, capsys):
    assert main(["bench", "predict", str(tiny_run.export_path.parent), "--limit", "300",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench_predict.json").read_text())
    assert (tmp_path / "bench_predict.png").read_bytes()[:8] == PNG
    assert report["texts"] == 300 and report["runs"]["predict_file"]["rows"] == 300
    assert report["runs"]["predict_file"]["bad_rows"] == 0
    runs = report["runs"]
    assert report["ratio"] == pytest.approx(
        runs["predict_file"]["texts_per_second"] / runs["in_process"]["texts_per_second"])
    assert "predict_file / in_process" in capsys.readouterr().out
